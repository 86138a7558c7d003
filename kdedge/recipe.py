"""The recipe: one YAML file per experiment, validated by a frozen pydantic model (extra="forbid").

Key paths users and docs rely on stay stable: seed, device, data.name, data.image_size, teacher.model,
teacher.epochs, teacher.batch_size, teacher.lr, teacher.checkpoint, teacher.pretrained (same under
student.), distillation.loss, distillation.alpha, distillation.temperature.

Convention: distillation.alpha is the weight of the SOFT (teacher) term. `hard_weight` is accepted
instead, for users of torchdistill / seed code that weight the other term (alpha = 1 - hard_weight).
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from kdedge import overrides as _overrides
from kdedge.data import DATASETS
from kdedge.errors import InputError, did_you_mean
from kdedge.losses import LOSSES
from kdedge.models import MODELS
from kdedge.overrides import parse_set as parse_set  # re-exported: `--set` parsing lives in kdedge.overrides
from kdedge.overrides import schema_children

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

    @field_validator("model")
    @classmethod
    def _known_model(cls, name: str) -> str:
        if name not in MODELS:
            raise ValueError(MODELS.unknown_message(name))
        return name

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


class DistillConfig(_Strict):
    loss: str = "hinton"
    loss_kwargs: dict[str, Any] = Field(default_factory=dict)  # the loss's own options (kdedge.losses)
    alpha: Annotated[float, Field(ge=0, le=1)] | None = None
    hard_weight: Annotated[float, Field(ge=0, le=1)] | None = None
    temperature: Annotated[float, Field(gt=0)] = 4.0
    cache_teacher_logits: bool = True
    bias_fix: Annotated[float, Field()] | Literal["auto"] | None = None

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


# stage keys added after runs were saved, dropped from the fingerprint while at their default
_LATER_STAGE_KEYS = {"momentum_start": None, "momentum_ramp_epochs": None, "dampening": False}


class Recipe(_Strict):
    name: str
    description: str = ""
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # autocast precision; auto = bf16/fp16 only where the device computes it natively (kdedge.devices)
    amp: Literal["auto", "off", "bf16", "fp16"] = "off"
    channels_last: bool = False
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
        if not data["distillation"]["loss_kwargs"]:  # runs saved before loss_kwargs existed keep their
            del data["distillation"]["loss_kwargs"]  # fingerprint (resume, sweep points)
        for stage in (data["teacher"], data["student"]):  # the same for the momentum ramp's keys
            for key, default in _LATER_STAGE_KEYS.items():
                if stage is not None and stage.get(key) == default:
                    del stage[key]
        return data

    def fingerprint(self) -> str:
        """sha256 of the canonical JSON of the resolved recipe (first 16 hex digits)."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


def packaged_recipes() -> dict[str, Path]:
    """Recipes shipped inside the package: name -> path."""
    folder = resources.files("kdedge") / "recipes"
    return {Path(str(p)).stem: Path(str(p)) for p in folder.iterdir() if str(p).endswith(".yaml")}


def find_recipe(path_or_name: str) -> Path:
    """A path to a YAML file, or the name of a packaged recipe ('hinton_mnist')."""
    path = Path(path_or_name)
    if path.is_file():
        return path
    shipped = packaged_recipes()
    if path_or_name in shipped:
        return shipped[path_or_name]
    if path.suffix in (".yaml", ".yml") or "/" in path_or_name:
        raise InputError(
            f"recipe file not found: {path_or_name} (give an existing YAML file or a packaged "
            "recipe name; `kdedge recipes` lists them)"
        )
    hint = did_you_mean(path_or_name, shipped)
    raise InputError(f"no recipe file or packaged recipe named '{path_or_name}';{hint} see `kdedge recipes`")


def read_yaml(path: Path) -> dict[str, Any]:
    """safe_load a YAML mapping; a python tag or a syntax error is one InputError naming the file."""
    try:
        content = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise InputError(f"{path}:{where} invalid YAML: {problem}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"cannot read recipe {path}: {err}") from None
    if not isinstance(content, dict):
        raise InputError(f"{path}: a recipe must be a YAML mapping (got {type(content).__name__})")
    return _overrides.plain(content, str(path))  # JSON types only: the recipe is hashed and saved as JSON


def check_key(key: str) -> None:
    """Raise InputError unless the dotted key names a recipe field (free-form below model_kwargs/grid)."""
    _overrides.check_key(key, Recipe)


def apply_overrides(config: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Return a deep copy of config with each dotted key set; keys are checked against the schema."""
    return _overrides.apply_overrides(config, overrides, Recipe)


def _format_error(error: dict[str, Any], source: str) -> str:
    where = ".".join(str(p) for p in error["loc"]) or "recipe"
    if error["type"] == "extra_forbidden":
        parent: type[BaseModel] | None = Recipe
        for part in error["loc"][:-1]:
            parent = schema_children(parent).get(str(part)) if parent else None
        hint = did_you_mean(str(error["loc"][-1]), schema_children(parent)) if parent else ""
        return f"{source}: unknown key '{where}'{',' + hint if hint else ''}"
    message = error["msg"].removeprefix("Value error, ")
    got = "" if error["type"] in ("missing", "value_error") else f" (got {error.get('input')!r})"
    return f"{source}: {where}: {message}{got}"


def validate_recipe(config: dict[str, Any], source: str = "recipe", overrides: dict[str, Any] | None = None) -> Recipe:
    """dict -> Recipe; every problem is collected into ONE InputError line, each with its key path. A
    problem at (or under) a key given in `overrides` names that `--set`, not the recipe file."""
    try:
        return Recipe.model_validate(config)
    except ValidationError as err:
        raise InputError(
            "; ".join(_format_error(e, _blame(e["loc"], source, overrides or {})) for e in err.errors())
        ) from None


def _blame(loc: tuple, source: str, overrides: dict[str, Any]) -> str:
    """`--set KEY=VALUE` when the error's key path is (under) an overridden key, else the file. A section
    -level error (alpha and hard_weight together) blames a --set of one of its keys."""
    where = ".".join(str(p) for p in loc)
    for key, value in overrides.items():
        if where == key or where.startswith(key + ".") or (where and key.startswith(where + ".")):
            return f"--set {key}={value}"
    return source


def _one_soft_weight(config: dict[str, Any], overrides: dict[str, Any]) -> str | None:
    """A command-line alpha replaces the recipe's hard_weight and vice versa (one number said two ways);
    returns the note to print once, or None."""
    section = config.get("distillation")
    if not isinstance(section, dict):
        return None
    for given, other in (("hard_weight", "alpha"), ("alpha", "hard_weight")):
        key = f"distillation.{given}"
        if key in overrides and f"distillation.{other}" not in overrides and section.get(other) is not None:
            old = section.pop(other)
            return f"note: --set {key}={overrides[key]} replaces the recipe's {other}: {old}"
    return None


def _resolve_paths(config: dict[str, Any], base: Path) -> dict[str, Any]:
    """Relative checkpoint / pretrained / data.path paths in a recipe file are relative to its folder."""
    data = config.get("data")
    if isinstance(data, dict) and isinstance(data.get("path"), str):
        if not Path(data["path"]).expanduser().is_absolute():
            data["path"] = str((base / data["path"]).resolve())
    for stage in ("teacher", "student"):
        section = config.get(stage)
        if not isinstance(section, dict):
            continue
        for key in ("checkpoint", "pretrained"):
            value = section.get(key)
            if isinstance(value, str) and not Path(value).expanduser().is_absolute():
                section[key] = str((base / value).resolve())
    return config


def weight_paths(recipe: Recipe) -> dict[str, str]:
    """{'teacher.checkpoint': '/abs/path', ...}: the files a recipe will read, for the CLI to show."""
    paths = {}
    for stage in ("teacher", "student"):
        cfg = getattr(recipe, stage)
        for key in ("checkpoint", "pretrained"):
            value = getattr(cfg, key, None) if cfg is not None else None
            if isinstance(value, str):
                paths[f"{stage}.{key}"] = value
    return paths


def load_recipe(path_or_name: str, overrides: dict[str, Any] | None = None) -> Recipe:
    """Read, override (`--set`) and validate a recipe given by path or packaged name."""
    path = find_recipe(path_or_name)
    config = _resolve_paths(read_yaml(path), path.parent)
    overrides = overrides or {}
    note = _one_soft_weight(config, overrides)
    for key, value in overrides.items():  # a bad --set key is the command line's fault, not the file's
        try:
            check_key(key)
        except InputError as err:
            raise InputError(f"--set {key}={value}: {err}") from None
    recipe = validate_recipe(apply_overrides(config, overrides), str(path), overrides)
    if note:
        from kdedge.console import error_console

        error_console.print(note, markup=False, highlight=False, soft_wrap=True)
    return recipe
