"""The recipe's schema: one YAML file per experiment, validated by a frozen pydantic model (extra="forbid").

Key paths users and docs rely on stay stable: seed, device, data.name, data.image_size, teacher.model,
teacher.epochs, teacher.batch_size, teacher.lr, teacher.checkpoint, teacher.pretrained (same under
student.), distillation.loss, distillation.alpha, distillation.temperature.

Convention: distillation.alpha is the weight of the SOFT (teacher) term. `hard_weight` is accepted
instead, for users of torchdistill / seed code that weight the other term (alpha = 1 - hard_weight).
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from kdedge.data import DATASETS
from kdedge.losses import FEATURE_LOSSES, LOSSES
from kdedge.models import check_model_name

Scalar = int | float | str | bool


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SplitConfig(_Strict):
    """A seeded stratified train/val/test split, for data sets that ship one labelled set (APTOS)."""

    seed: int = 0
    val: Annotated[float, Field(ge=0, lt=1)] = 0.1
    test: Annotated[float, Field(gt=0, lt=1)] = 0.2

    @model_validator(mode="after")
    def _leaves_training_images(self) -> SplitConfig:
        if self.val + self.test >= 1:
            raise ValueError(f"val + test must be < 1 (got {self.val} + {self.test})")
        return self


class DataConfig(_Strict):
    name: str
    image_size: Annotated[int, Field(gt=0)] | None = None
    split: SplitConfig | None = None  # data sets with a given test split (MNIST, CIFAR) refuse it
    cache_dir: str | None = None  # decoded images (folder, csv, aptos); default $KDEDGE_CACHE, ~/.cache
    # your own images (data.name: folder | csv; docs/own-images.md): each source checks its own keys
    path: str | None = None  # the folder of class folders, or the CSV file (relative: to the recipe's folder)
    image_column: str | None = None  # csv: default the first column
    label_column: str | None = None  # csv: default the second column
    class_names: list[str] | None = None  # csv: the class list (default: sorted labels, or 0..max)
    split_column: str | None = None  # csv: a column of train / val / test: the data set's own split, used as is
    in_channels: Literal[1, 3] | None = None  # default: 1 when every image is grayscale, else 3
    resize: Literal["center_crop", "squash", "pad", "retina_crop"] | None = None  # default center_crop
    mean: list[float] | None = None  # default: measured on the training split
    std: list[float] | None = None
    skip_bad_images: bool = False  # unreadable images: a warning, a count and RUN/bad_images.txt
    val_size: Annotated[int, Field(ge=0)] = 0
    train_limit: Annotated[int, Field(gt=0)] | None = None
    test_limit: Annotated[int, Field(gt=0)] | None = None
    omit_classes: list[int] = Field(default_factory=list)
    keep_classes: list[int] | None = None

    @field_validator("name")
    @classmethod
    def _known_dataset(cls, name: str) -> str:
        if name not in DATASETS:
            raise ValueError(DATASETS.unknown_message(name))
        return name

    def loader_options(self) -> dict[str, Any]:
        """The data.* options the source itself reads and checks (only those the recipe sets)."""
        keys = (
            "split",
            "cache_dir",
            "path",
            "image_column",
            "label_column",
            "class_names",
            "split_column",
            "in_channels",
            "resize",
            "mean",
            "std",
            "skip_bad_images",
        )
        options = {key: getattr(self, key) for key in keys if getattr(self, key) not in (None, False)}
        return options | ({"split": self.split.model_dump()} if self.split is not None else {})


class StageConfig(_Strict):
    """How one model (teacher or student) is built and trained."""

    model: str
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    epochs: Annotated[int, Field(gt=0)] = 10
    batch_size: Annotated[int, Field(gt=0)] = 128
    optimizer: Literal["sgd", "adam", "adamw"] = "sgd"
    lr: Annotated[float, Field(gt=0)] = 0.1
    momentum: Annotated[float, Field(ge=0, lt=1)] = 0.9
    # sgd: momentum rising linearly from momentum_start to `momentum` over the first momentum_ramp_epochs
    # (the dropout papers' MLPs: 0.5 -> 0.99 over 500 epochs); None: `momentum` from the first step
    momentum_start: Annotated[float, Field(ge=0, lt=1)] | None = None
    momentum_ramp_epochs: Annotated[float, Field(gt=0)] | None = None
    # sgd: each gradient scaled by (1 - momentum) (Hinton et al. 2012's update; PyTorch's dampening =
    # momentum), so a step is about lr x gradient at any momentum, also while it ramps
    dampening: bool = False
    nesterov: bool = False
    weight_decay: Annotated[float, Field(ge=0)] = 0.0
    max_norm: Annotated[float, Field(gt=0)] | None = None
    clip_grad_norm: Annotated[float, Field(gt=0)] | None = None  # total L2 norm per step (timm's --clip-grad)
    # an exponential moving average of the weights, updated after every step (timm's ModelEmaV3, as its
    # --model-ema-decay, with warm-up so a short run's average is not its initial weights): the stage keeps
    # and scores the average; the raw weights' scores are logged beside it as raw_*. None: no average
    ema_decay: Annotated[float, Field(gt=0, lt=1)] | None = None
    schedule: Literal["constant", "cosine", "step", "onecycle"] = "constant"
    step_epochs: Annotated[int, Field(gt=0)] | None = None
    step_gamma: Annotated[float, Field(gt=0, le=1)] = 0.1
    # cosine with warm restarts (SGDR, Loshchilov & Hutter 2017; timm's cycle_limit/cycle_decay): relative
    # lengths of the cycles, scaled to the epochs after warm-up ([100, 60] with 160 epochs: 100 + 60, and
    # still 5/8 + 3/8 after --set epochs=16); each new cycle starts at the previous peak x cycle_decay
    cosine_cycles: list[Annotated[float, Field(gt=0)]] | None = None
    cycle_decay: Annotated[float, Field(gt=0, le=1)] = 1.0
    # linear lr warm-up from ~0 over the first warmup_epochs (fractions allowed), then the schedule over the
    # rest; capped at a quarter of the run, so `--set epochs=1` on a recipe with a 5-epoch warm-up still
    # warms up (for a quarter epoch) and then decays instead of ending at its peak lr
    warmup_epochs: Annotated[float, Field(ge=0)] = 0
    augment: Literal["none", "jitter", "affine", "elastic", "crop_flip"] = "none"
    class_weighted_loss: bool = False
    checkpoint: str | None = None
    pretrained: bool | str = False
    eval_batch_size: Annotated[int, Field(gt=0)] = 1024
    # which epoch's weights the stage keeps: the last, or the one with the best validation accuracy (ties:
    # lower validation loss, then the earlier epoch); best_val needs a validation split (data.val_size)
    keep: Literal["last", "best_val"] = "last"

    @field_validator("model")
    @classmethod
    def _known_model(cls, name: str) -> str:
        return check_model_name(name)  # kdedge's own names and every timm architecture

    @model_validator(mode="after")
    def _step_needs_epochs(self) -> StageConfig:
        if self.schedule == "step" and self.step_epochs is None:
            raise ValueError("schedule 'step' needs step_epochs (decay every N epochs)")
        if self.cosine_cycles is not None and self.schedule != "cosine":
            raise ValueError("cosine_cycles needs schedule: cosine")
        if (self.momentum_start is None) != (self.momentum_ramp_epochs is None):
            raise ValueError("momentum_start and momentum_ramp_epochs go together (a ramp needs both)")
        if (self.momentum_start is not None or self.dampening) and self.optimizer != "sgd":
            raise ValueError("momentum_start and dampening need optimizer: sgd")
        if self.dampening and self.nesterov:
            raise ValueError("dampening and nesterov cannot be combined (PyTorch's SGD refuses it)")
        return self


class LayerPair(_Strict):
    """One student layer matched to one teacher layer, each named as in model.named_modules()."""

    student: Annotated[str, Field(min_length=1)]
    teacher: Annotated[str, Field(min_length=1)]


class DistillConfig(_Strict):
    loss: str = "hinton"
    loss_kwargs: dict[str, Any] = Field(default_factory=dict)  # the loss's own options (kdedge.losses)
    alpha: Annotated[float, Field(ge=0, le=1)] | None = None
    hard_weight: Annotated[float, Field(ge=0, le=1)] | None = None
    temperature: Annotated[float, Field(gt=0)] = 4.0
    cache_teacher_logits: bool = True
    bias_fix: Annotated[float, Field()] | Literal["auto"] | None = None
    # a feature method (kdedge.train.features): the feature loss (FEATURE_LOSSES; none: no feature method) on
    # these layer pairs, added to the logit loss with feature_weight (None: the feature loss's own default)
    features: list[LayerPair] = Field(default_factory=list)
    feature_loss: str | None = None
    feature_weight: Annotated[float, Field(ge=0)] | None = None
    feature_loss_kwargs: dict[str, Any] = Field(default_factory=dict)

    @field_validator("feature_loss")
    @classmethod
    def _known_feature_loss(cls, name: str | None) -> str | None:
        if name == "none":  # a sweep's grid turns the feature method off with `distillation.feature_loss=none`
            return None
        if name is not None and name not in FEATURE_LOSSES:
            raise ValueError(FEATURE_LOSSES.unknown_message(name))
        return name

    @model_validator(mode="after")
    def _features_and_their_loss(self) -> DistillConfig:
        # features without a feature_loss are not matched (a grid may vary feature_loss over none, fitnets, at)
        if self.feature_loss is not None and not self.features:
            raise ValueError(f"feature_loss {self.feature_loss} needs features: [{{student: LAYER, teacher: LAYER}}]")
        if self.feature_loss_kwargs and self.feature_loss is not None:
            FEATURE_LOSSES.get(self.feature_loss).parse_options(self.feature_loss_kwargs)
        return self

    @field_validator("loss")
    @classmethod
    def _known_loss(cls, name: str) -> str:
        if name not in LOSSES:
            raise ValueError(LOSSES.unknown_message(name))
        return name

    @model_validator(mode="after")
    def _one_weight(self) -> DistillConfig:
        if self.alpha is not None and self.hard_weight is not None:
            raise ValueError("give alpha (soft-term weight) or hard_weight (hard-term weight), not both")
        if self.loss_kwargs:  # only then is the loss's module (and torch) imported: its options model checks them
            LOSSES.get(self.loss).parse_options(self.loss_kwargs)  # ValueError naming loss_kwargs.<key>
        return self

    @property
    def soft_weight(self) -> float:
        """alpha: weight of the teacher term; default 0.5 when neither alpha nor hard_weight is given."""
        if self.hard_weight is not None:
            return 1.0 - self.hard_weight
        return 0.5 if self.alpha is None else self.alpha


class SweepConfig(_Strict):
    """Students trained from ONE teacher: every point of the grid's cartesian product is a run."""

    grid: dict[str, list[Scalar]]
    metric: Literal["test_errors", "test_accuracy", "val_accuracy"] = "test_errors"
    # also train the recipe's student once WITHOUT the teacher (distillation.loss: none) into SWEEP/baseline,
    # so every row says what KD gained: a sweep's best point means little without it
    baseline: bool = True


class ExportConfig(_Strict):
    """Defaults of `kdedge export` for this recipe (its command-line options override them)."""

    opset: Annotated[int, Field(ge=18, le=23)] = 20
    calibration_images: Annotated[int, Field(gt=0)] = 128  # real training images for int8 ranges
    # activations/weights (kdedge.export.int8_schemes): u8s8 is the fast one on x86; -gemm quantises only
    # Conv/MatMul/Gemm (ConvNeXt, Swin); s7 = 7-bit weights, no int16 saturation on AVX2 without VNNI
    int8_scheme: Literal["u8s8", "u8s7", "s8s8", "u8s8-gemm", "u8s7-gemm"] = "u8s8"
    min_top1_agreement: Annotated[float, Field(ge=0, le=1)] = 0.97  # fp16/int8 vs fp32 on real test images
    fp32_rtol: Annotated[float, Field(gt=0)] = 1e-4  # max |onnx - torch| / max |torch| on random inputs


# distillation keys added after runs were saved, dropped from the fingerprint while at their default
_LATER_DISTILL_KEYS = {
    "loss_kwargs": {},
    "features": [],
    "feature_loss": None,
    "feature_weight": None,
    "feature_loss_kwargs": {},
}

# stage keys added after runs were saved, dropped from the fingerprint while at their default
_LATER_STAGE_KEYS = {
    "momentum_start": None,
    "momentum_ramp_epochs": None,
    "dampening": False,
    "keep": "last",
    "ema_decay": None,
}


class Recipe(_Strict):
    name: str
    description: str = ""
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # autocast precision; auto = bf16/fp16 only where the device computes it natively (kdedge.devices)
    amp: Literal["auto", "off", "bf16", "fp16"] = "off"
    channels_last: bool = False
    # torch.compile (inductor) of the trained module; on the 2-core CPUs here no gain yet worth its minutes
    # of compilation (docs/cifar10.md, bench/cifar10_train_throughput.py): no `auto`, off by default
    compile: bool = False
    tensorboard: bool = False  # events next to metrics.jsonl (extra: kdedge-distill[tensorboard])
    data: DataConfig
    teacher: StageConfig | None = None
    student: StageConfig | None = None
    distillation: DistillConfig = Field(default_factory=DistillConfig)
    sweep: SweepConfig | None = None
    export: ExportConfig = Field(default_factory=ExportConfig)

    @field_validator("amp", mode="before")
    @classmethod
    def _yaml_off(cls, value: Any) -> Any:
        """YAML reads a bare `off` (in a file or `--set amp=off`) as false: that means amp off."""
        return "off" if value is False else value

    @model_validator(mode="after")
    def _has_a_model(self) -> Recipe:
        if self.teacher is None and self.student is None:
            raise ValueError("a recipe needs a teacher, a student, or both")
        if self.student is not None and self.teacher is None and self.distillation.loss != "none":
            raise ValueError("distillation.loss needs a teacher section (or set distillation.loss: none)")
        return self

    def to_dict(self) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        for key, default in _LATER_DISTILL_KEYS.items():  # runs saved before these keys existed keep their
            if data["distillation"][key] == default:  # fingerprint (resume, sweep points)
                del data["distillation"][key]
        for stage in (data["teacher"], data["student"]):  # the same for the later stage keys
            for key, default in _LATER_STAGE_KEYS.items():
                if stage is not None and stage.get(key) == default:
                    del stage[key]
        return data

    def fingerprint(self) -> str:
        """sha256 of the canonical JSON of the resolved recipe (first 16 hex digits)."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]
