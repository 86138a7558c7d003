"""Distillation losses by name. Convention everywhere in kdedge: `alpha` weights the SOFT (teacher)
term and (1 - alpha) the hard-label term, so alpha=0 is plain training and alpha=1 teacher only.

Every loss is called as

    loss(student_logits, teacher_logits, targets, alpha=..., temperature=..., class_weights=..., **options)

student_logits (N, C) float, teacher_logits (N, C) float or None, targets (N,) int64; it returns a scalar
averaged over the N samples (batchmean, never per element). alpha and temperature are the recipe's
distillation.alpha / distillation.temperature; class_weights (C,) or None weights the hard-label term per
class (imbalanced data such as APTOS). `options` are the loss's own keyword options, given in a recipe as
distillation.loss_kwargs and validated by the pydantic model it was registered with: a new loss with an
option of its own is one function and one small model, registered with @register_loss (docs/EXTENDING.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, ValidationError

from kdedge.registry import Registry


class NoOptions(BaseModel):
    """The options model of a loss that has none: any distillation.loss_kwargs key is an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class LossSpec:
    """A registered loss: the function and the pydantic model of its own keyword options."""

    fn: Callable[..., torch.Tensor]
    options: type[BaseModel] = NoOptions

    def parse_options(self, kwargs: dict[str, Any], prefix: str = "loss_kwargs.") -> dict[str, Any]:
        """distillation.loss_kwargs -> validated keyword options; a bad key or value raises ValueError
        naming it (prefix + key)."""
        try:
            return self.options.model_validate(kwargs).model_dump()
        except ValidationError as err:
            problems = [f"{prefix}{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()]
            allowed = ", ".join(self.options.model_fields) or "none"
            raise ValueError(f"{'; '.join(problems)} (options of this loss: {allowed})") from None


LOSSES: Registry[LossSpec] = Registry("loss")


def register_loss(name: str, options: type[BaseModel] = NoOptions) -> Callable:
    """Decorator: register a loss function under `name`, with the model of its keyword options."""

    def add(fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        LOSSES.add(name, LossSpec(fn, options))
        return fn

    return add


def inverse_frequency_weights(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Per-class weights (C,) inversely proportional to the class counts in labels (N,), mean 1: the
    hard-label term of imbalanced data (APTOS) then counts every class equally."""
    counts = torch.bincount(labels, minlength=num_classes).float().clamp(min=1)
    weights = counts.sum() / (len(counts) * counts)
    return weights / weights.mean()


@register_loss("none")
def hard_only(
    student_logits, teacher_logits, targets, alpha: float, temperature: float, class_weights: torch.Tensor | None = None
) -> torch.Tensor:
    """CE(y, softmax(s)): no teacher; alpha and temperature are ignored."""
    return F.cross_entropy(student_logits, targets, weight=class_weights)


@register_loss("hinton")
def hinton_kd(
    student_logits, teacher_logits, targets, alpha: float, temperature: float, class_weights: torch.Tensor | None = None
) -> torch.Tensor:
    """alpha * T^2 * CE(softmax(t/T), softmax(s/T)) + (1 - alpha) * CE(y, softmax(s)).

    The T^2 keeps the soft term's gradient magnitude independent of T (Hinton et al. 2015, sec. 2).
    """
    soft_targets = F.softmax(teacher_logits / temperature, dim=1)
    soft_ce = -(soft_targets * F.log_softmax(student_logits / temperature, dim=1)).sum(1).mean()
    hard_ce = F.cross_entropy(student_logits, targets, weight=class_weights)
    return alpha * temperature**2 * soft_ce + (1 - alpha) * hard_ce


@register_loss("kl")
def kl_kd(
    student_logits, teacher_logits, targets, alpha: float, temperature: float, class_weights: torch.Tensor | None = None
) -> torch.Tensor:
    """alpha * T^2 * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) * CE(y, softmax(s)), KL batchmean.

    Same gradient as `hinton` (they differ by the teacher's entropy, a constant); the value is 0 when
    the student matches the teacher, which makes loss curves easier to read.
    """
    kl = F.kl_div(
        F.log_softmax(student_logits / temperature, dim=1),
        F.log_softmax(teacher_logits / temperature, dim=1),
        reduction="batchmean",
        log_target=True,
    )
    hard_ce = F.cross_entropy(student_logits, targets, weight=class_weights)
    return alpha * temperature**2 * kl + (1 - alpha) * hard_ce
