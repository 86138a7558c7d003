"""Feature methods (FitNets, attention transfer, ...): the recipe's logit loss plus a feature loss on layer
pairs, in the same loop as every other method (kdedge.train.loop).

A recipe names the layers as model.named_modules() does:

    distillation:
      loss: hinton                                   # the logit term, as always
      features: [{student: "2", teacher: "2"}]       # layer pairs
      feature_loss: fitnets                          # FEATURE_LOSSES (kdedge.losses): fitnets | at
      feature_weight: 100                            # default: the feature loss's own (fitnets 100, at 1000)

`FeatureCapture` puts forward hooks on those modules of the bare student and teacher: every forward pass
leaves their outputs in .student / .teacher ({layer name: tensor}). Where a feature loss asks for it
(FeatureLossSpec.adapter) each student layer gets a learnable adapter to its teacher's shape (1x1 conv for
(N, C, H, W), linear for (N, D): FitNets' regressor), found by one probe pass of both models on two training
images. The adapters train with the student: `WithAdapters` carries them beside the student through the
optimiser, the training state file and resume, while the student's weights file and its export hold the
bare student only. The teacher runs live every step (its features cannot come from the logit cache).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from kdedge.data.types import Split, normalize
from kdedge.errors import InputError, did_you_mean
from kdedge.losses import FEATURE_LOSSES, TrainingProgress
from kdedge.models.weights import build_stage_model
from kdedge.recipe import DistillConfig, Recipe, StageConfig
from kdedge.train.context import Context
from kdedge.train.methods import Features, LogitLoss


def check_layer_names(model: nn.Module, names: list[str], which: str) -> None:
    """InputError (one line, with a did-you-mean) when `model` (the `which` model: student / teacher) has no
    module called one of `names`."""
    modules = [name for name, _ in model.named_modules() if name]
    for name in names:
        if name not in modules:
            hint = did_you_mean(name, modules) or f" its layers: {', '.join(modules[:8])}, ..."
            raise InputError(
                f"distillation.features: the {which} ({type(model).__name__}) has no layer '{name}';{hint} "
                "(names as model.named_modules() gives them; list them with `kdedge layers RECIPE`)"
            )


def check_recipe_layers(recipe: Recipe, info: dict) -> None:
    """Before anything trains: the layer names of distillation.features exist in the recipe's student and
    teacher (built without pretrained weights; `info`: kdedge.files.rundir.data_info of the data)."""
    distill = recipe.distillation
    if distill.feature_loss is None or recipe.student is None or recipe.teacher is None:
        return
    for which, cfg in (("student", recipe.student), ("teacher", recipe.teacher)):
        model = build_stage_model(cfg.model_copy(update={"pretrained": False, "checkpoint": None}), info)
        check_layer_names(model, [getattr(pair, which) for pair in distill.features], which)


class FeatureCapture:
    """Forward hooks on the named layers of the student and the teacher: after a forward pass, .student and
    .teacher hold {layer name: output tensor (N, ...)} of that pass. remove() takes the hooks off."""

    def __init__(self, student: nn.Module, teacher: nn.Module, distill: DistillConfig) -> None:
        self.student: Features = {}
        self.teacher: Features = {}
        self._handles = [
            *self._hook(student, [pair.student for pair in distill.features], "student", self.student),
            *self._hook(teacher, [pair.teacher for pair in distill.features], "teacher", self.teacher),
        ]

    @staticmethod
    def _hook(model: nn.Module, names: list[str], which: str, into: Features) -> list:
        check_layer_names(model, names, which)
        modules = dict(model.named_modules())

        def keep(name: str) -> Callable:
            def hook(module: nn.Module, inputs: tuple, output: torch.Tensor | tuple) -> None:
                into[name] = output[0] if isinstance(output, tuple) else output

            return hook

        return [modules[name].register_forward_hook(keep(name)) for name in dict.fromkeys(names)]

    def clear(self) -> None:
        """Drop the last pass's tensors (an evaluation batch's would otherwise stay in memory)."""
        self.student.clear()
        self.teacher.clear()

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self.clear()


def make_adapter(student_shape: torch.Size, teacher_shape: torch.Size, pair: str) -> nn.Module:
    """FitNets' regressor from one student feature shape to its teacher's (shapes without the batch):
    identity when equal, a 1x1 conv for (C, H, W) of the same H, W, a linear layer for (D,)."""
    if student_shape == teacher_shape:
        return nn.Identity()
    if len(student_shape) == len(teacher_shape) == 3 and student_shape[1:] == teacher_shape[1:]:
        return nn.Conv2d(student_shape[0], teacher_shape[0], kernel_size=1, bias=False)
    if len(student_shape) == len(teacher_shape) == 1:
        return nn.Linear(student_shape[0], teacher_shape[0])
    raise InputError(
        f"distillation.features {pair}: no adapter from the student's {tuple(student_shape)} to the teacher's "
        f"{tuple(teacher_shape)} (per image); pick layers of the same spatial size, or both (N, D)"
    )


@dataclass(eq=False)
class FeatureMethod:
    """logit loss + weight * feature_loss(student_logits, teacher_logits, targets, [adapter_l(s_l)], [t_l]);
    called by the loop as every DistillationMethod (kdedge.train.methods), with the captured features."""

    logit_loss: LogitLoss
    fn: Callable[..., torch.Tensor]
    options: dict
    weight: float
    pairs: list[tuple[str, str]]
    capture: FeatureCapture
    adapters: nn.ModuleList = field(default_factory=nn.ModuleList)

    @classmethod
    def build(
        cls,
        distill: DistillConfig,
        cfg: StageConfig,
        student: nn.Module,
        teacher: nn.Module,
        train: Split,
        ctx: Context,
    ) -> FeatureMethod:
        """The recipe's feature method on the bare `student` and `teacher` (hooks on; adapters on ctx.device,
        initialised from the global RNG, shapes from a probe pass on two training images)."""
        spec = FEATURE_LOSSES.get(distill.feature_loss)
        logit_loss = LogitLoss.from_recipe(distill, cfg, train.labels.to(ctx.device), ctx.num_classes)
        capture = FeatureCapture(student, teacher, distill)
        pairs = [(pair.student, pair.teacher) for pair in distill.features]
        weight = spec.weight if distill.feature_weight is None else distill.feature_weight
        method = cls(logit_loss, spec.fn, spec.parse_options(distill.feature_loss_kwargs), weight, pairs, capture)
        if spec.adapter:
            probe = normalize(train.images[:2].to(ctx.device), ctx.mean, ctx.std)
            shapes = _probe_shapes(student, teacher, capture, probe)
            adapters = [make_adapter(shapes[0][s], shapes[1][t], f"{s} -> {t}") for s, t in pairs]
            method.adapters = nn.ModuleList(adapters).to(ctx.device)
        return method

    def __call__(
        self,
        student_logits: torch.Tensor,
        teacher_logits: torch.Tensor | None,
        targets: torch.Tensor,
        progress: TrainingProgress | None = None,
        student_features: Features | None = None,
        teacher_features: Features | None = None,
    ) -> torch.Tensor:
        if student_features is None or teacher_features is None:
            raise ValueError("a feature method needs the student's and the teacher's features")
        logit_term = self.logit_loss(student_logits, teacher_logits, targets, progress)
        students = [student_features[s] for s, _ in self.pairs]
        if len(self.adapters):
            students = [adapter(feature) for adapter, feature in zip(self.adapters, students, strict=True)]
        teachers = [teacher_features[t] for _, t in self.pairs]
        feature_term = self.fn(student_logits, teacher_logits, targets, students, teachers, **self.options)
        return logit_term + self.weight * feature_term


def _probe_shapes(
    student: nn.Module, teacher: nn.Module, capture: FeatureCapture, inputs: torch.Tensor
) -> tuple[dict[str, torch.Size], dict[str, torch.Size]]:
    """One forward pass of both models (eval mode, no gradients) on inputs (2, C, H, W): the per-image shape
    of every captured layer, {name: shape without the batch} for the student and the teacher."""
    was_training = student.training
    student.eval()
    with torch.no_grad():
        student(inputs)
        teacher(inputs)
    student.train(was_training)
    student_shapes = {name: value.shape[1:] for name, value in capture.student.items()}
    shapes = (student_shapes, {name: value.shape[1:] for name, value in capture.teacher.items()})
    capture.clear()
    return shapes


class WithAdapters(nn.Module):
    """The student as fit trains it under a feature method with adapters: forward is the student's; the
    adapters ride along, so the optimiser, the training state file and resume carry them. The student's
    weights file and export are written from the bare student (shared parameters) and never see them."""

    def __init__(self, student: nn.Module, adapters: nn.ModuleList) -> None:
        super().__init__()
        self.student = student
        self.adapters = adapters

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images (N, C, H, W) float -> the student's logits (N, num_classes)."""
        return self.student(images)


def layer_shapes(model: nn.Module, inputs: torch.Tensor) -> list[tuple[str, str, tuple[int, ...]]]:
    """(name, module type, output shape per image) of every named module of `model`, in named_modules()
    order, from one forward pass (eval mode, no gradients) on inputs (N, C, H, W); a module whose output is
    not a tensor gets the shape (). What `kdedge layers` prints for choosing distillation.features."""
    shapes: dict[str, tuple[int, ...]] = {}

    def keep(name: str) -> Callable:
        def hook(module: nn.Module, args: tuple, output: torch.Tensor | tuple) -> None:
            output = output[0] if isinstance(output, tuple) and output else output
            shapes.setdefault(name, tuple(output.shape[1:]) if isinstance(output, torch.Tensor) else ())

        return hook

    named = [(name, module) for name, module in model.named_modules() if name]
    handles = [module.register_forward_hook(keep(name)) for name, module in named]
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(inputs)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return [(name, type(module).__name__, shapes.get(name, ())) for name, module in named]
