"""The distillation method: what turns one step's outputs into the loss. This is where a method plugs into
the loop (kdedge.train.loop): `fit` builds one per stage and calls it once per step as

    loss = method(student_logits, teacher_logits, targets, progress=..., student_features=..., teacher_features=...)

student_logits (B, C) float32; teacher_logits (B, C) float32 or None (no teacher, or distillation.loss:
none); targets (B,) int64; progress: a losses.TrainingProgress (epoch, step: for warm-ups such as DKD's);
*_features: {layer name: activation tensor} captured by forward hooks, or None (a logit method).
It returns a scalar averaged over the batch. `LogitLoss` is the recipe's loss from the LOSSES table (hinton,
kl, dkd, dist, none, ...) on logits and ignores features; kdedge.train.features.FeatureMethod (FitNets,
attention transfer: the FEATURE_LOSSES table) adds a term on features, and has a `capture` whose hooks the
loop reads the feature dicts from.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch

from kdedge.losses import LOSSES, TrainingProgress
from kdedge.losses.classic import inverse_frequency_weights
from kdedge.recipe import DistillConfig, StageConfig

Features = dict[str, torch.Tensor]


class DistillationMethod(Protocol):
    """One step's loss from the student's and the teacher's outputs (module docstring: shapes)."""

    def __call__(
        self,
        student_logits: torch.Tensor,
        teacher_logits: torch.Tensor | None,
        targets: torch.Tensor,
        progress: TrainingProgress | None = None,
        student_features: Features | None = None,
        teacher_features: Features | None = None,
    ) -> torch.Tensor: ...


@dataclass(frozen=True)
class LogitLoss:
    """The recipe's distillation loss on logits: fn(student_logits, teacher_logits, targets, <the loop inputs
    it takes: alpha, temperature, class_weights, progress>, **loss_kwargs) (kdedge.losses)."""

    fn: Callable[..., torch.Tensor]
    kwargs: dict
    takes_progress: bool = False

    @classmethod
    def from_recipe(cls, distill: DistillConfig, cfg: StageConfig, labels: torch.Tensor, num_classes: int) -> LogitLoss:
        """The loss named by distillation.loss with its options; labels (N,) int64 of the training split
        give the class weights when the stage asks for class_weighted_loss."""
        spec = LOSSES.get(distill.loss)
        class_weights = inverse_frequency_weights(labels, num_classes) if cfg.class_weighted_loss else None
        shared = {"alpha": distill.soft_weight, "temperature": distill.temperature, "class_weights": class_weights}
        kwargs = spec.loop_inputs(shared) | spec.parse_options(distill.loss_kwargs)
        return cls(spec.fn, kwargs, "progress" in spec.inputs)

    def __call__(
        self,
        student_logits: torch.Tensor,
        teacher_logits: torch.Tensor | None,
        targets: torch.Tensor,
        progress: TrainingProgress | None = None,
        student_features: Features | None = None,
        teacher_features: Features | None = None,
    ) -> torch.Tensor:
        extra = {"progress": progress} if self.takes_progress else {}
        return self.fn(student_logits, teacher_logits, targets, **self.kwargs, **extra)
