"""Distillation losses by name: the table. It imports no torch: each loss lives in its own module (classic.py:
none, hinton, kl), imported on first use. Convention everywhere in kdedge: `alpha` weights the SOFT (teacher)
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

from pydantic import BaseModel, ConfigDict, ValidationError

from kdedge.registry import Registry


class NoOptions(BaseModel):
    """The options model of a loss that has none: any distillation.loss_kwargs key is an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class LossSpec:
    """A registered loss: the function and the pydantic model of its own keyword options."""

    fn: Callable[..., Any]
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

    def add(fn: Callable[..., Any]) -> Callable[..., Any]:
        LOSSES.add(name, LossSpec(fn, options))
        return fn

    return add


LOSSES.add("none", "kdedge.losses.classic:NONE")
LOSSES.add("hinton", "kdedge.losses.classic:HINTON")
LOSSES.add("kl", "kdedge.losses.classic:KL")
