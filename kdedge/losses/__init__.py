"""Distillation losses by name: the table. It imports no torch: each loss lives in its own module (classic.py:
none, hinton, kl; dkd.py; dist.py), imported on first use. Convention of the classic losses: `alpha` weights
the SOFT (teacher) term and (1 - alpha) the hard-label term, so alpha=0 is plain training and alpha=1 teacher
only. Losses from papers with their own weights (dkd, dist) take those as options instead, with the
reference implementation's defaults, and do not read alpha (LossSpec.inputs says what each one reads).

Every loss is called as

    loss(student_logits, teacher_logits, targets, <its inputs>, **options)

student_logits (N, C) float, teacher_logits (N, C) float or None, targets (N,) int64; it returns a scalar
averaged over the N samples (batchmean, never per element). Its inputs are the keywords named in its
LossSpec.inputs, by default alpha, temperature and class_weights: alpha and temperature are the recipe's
distillation.alpha / distillation.temperature; class_weights (C,) or None weights the hard-label term per
class (imbalanced data such as APTOS); progress is a TrainingProgress (where the fit stands: warm-ups such as
DKD's). `options` are the loss's own keyword options, given in a recipe as distillation.loss_kwargs and
validated by the pydantic model it was registered with: a new loss with an option of its own is one function
and one small model, registered with @register_loss (docs/EXTENDING.md).

Feature losses (FEATURE_LOSSES: fitnets, at) are the second table: a term added to the logit loss,

    feature_weight * feature_loss(student_logits, teacher_logits, targets, student_features, teacher_features,
                                  **feature_loss_kwargs)

student_features / teacher_features: lists of activations, one per layer pair of distillation.features in
the recipe's order (the student's already through its adapter when FeatureLossSpec.adapter is true: then
each student tensor has its teacher's shape), (N, C, H, W) or (N, D). Registered with @register_feature_loss.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from kdedge.registry import Registry

LossInput = Literal["alpha", "temperature", "class_weights", "progress"]
# what a loss registered without `inputs` is called with (the convention every loss had before there were others)
CLASSIC_INPUTS: frozenset[LossInput] = frozenset({"alpha", "temperature", "class_weights"})


@dataclass(frozen=True)
class TrainingProgress:
    """Where a fit stands at the step a loss is called for: `epoch` the 0-based epoch in progress of `epochs`,
    `step` the 0-based step inside it of `steps_per_epoch`. Given to losses whose LossSpec.inputs has
    "progress" (a warm-up of the distillation term, as DKD's)."""

    epoch: int
    epochs: int
    step: int = 0
    steps_per_epoch: int = 1

    @property
    def epochs_done(self) -> float:
        """Epochs completed, fractional: 1.5 halfway through the second epoch."""
        return self.epoch + self.step / max(self.steps_per_epoch, 1)


class NoOptions(BaseModel):
    """The options model of a loss that has none: any distillation.loss_kwargs key is an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class LossSpec:
    """A registered loss: the function, the pydantic model of its own keyword options, and `inputs`: which of
    the training loop's keywords it is called with (alpha, temperature, class_weights, progress)."""

    fn: Callable[..., Any]
    options: type[BaseModel] = NoOptions
    inputs: frozenset[LossInput] = CLASSIC_INPUTS

    def loop_inputs(self, available: dict[str, Any]) -> dict[str, Any]:
        """The keywords of `available` ({input name: value}) this loss takes."""
        return {name: value for name, value in available.items() if name in self.inputs}

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


def register_loss(
    name: str, options: type[BaseModel] = NoOptions, inputs: frozenset[LossInput] = CLASSIC_INPUTS
) -> Callable:
    """Decorator: register a loss function under `name`, with the model of its keyword options and the
    loop inputs it takes."""

    def add(fn: Callable[..., Any]) -> Callable[..., Any]:
        LOSSES.add(name, LossSpec(fn, options, inputs))
        return fn

    return add


LOSSES.add("none", "kdedge.losses.classic:NONE")
LOSSES.add("hinton", "kdedge.losses.classic:HINTON")
LOSSES.add("kl", "kdedge.losses.classic:KL")
LOSSES.add("dkd", "kdedge.losses.dkd:DKD")
LOSSES.add("dist", "kdedge.losses.dist:DIST")


@dataclass(frozen=True)
class FeatureLossSpec:
    """A registered feature loss: the function, its options model, `weight`: the feature_weight used when the
    recipe gives none (the paper's), and `adapter`: whether the student's features go through a learnable
    adapter (1x1 conv / linear) to the teacher's shape first (FitNets' regressor)."""

    fn: Callable[..., Any]
    options: type[BaseModel] = NoOptions
    weight: float = 1.0
    adapter: bool = False

    def parse_options(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """distillation.feature_loss_kwargs -> validated keyword options (ValueError naming the key)."""
        return LossSpec(self.fn, self.options).parse_options(kwargs, prefix="feature_loss_kwargs.")


FEATURE_LOSSES: Registry[FeatureLossSpec] = Registry("feature loss")


def register_feature_loss(
    name: str, options: type[BaseModel] = NoOptions, weight: float = 1.0, adapter: bool = False
) -> Callable:
    """Decorator: register a feature loss under `name` (FeatureLossSpec says what the arguments mean)."""

    def add(fn: Callable[..., Any]) -> Callable[..., Any]:
        FEATURE_LOSSES.add(name, FeatureLossSpec(fn, options, weight, adapter))
        return fn

    return add


FEATURE_LOSSES.add("fitnets", "kdedge.losses.fitnets:FITNETS")
FEATURE_LOSSES.add("at", "kdedge.losses.attention:AT")


def describe_weights(loss: str, alpha: float, temperature: float, loss_kwargs: dict[str, Any]) -> str:
    """How the loss weighs its terms, for a run's header and RUN/recipe.yaml: alpha for the classic losses,
    the resolved own options (defaults included) for those that do not read alpha."""
    spec = LOSSES.get(loss)
    temperature_part = f", T={temperature:g}" if "temperature" in spec.inputs else ""
    if "alpha" in spec.inputs:
        return f"alpha={alpha:g} = weight of the teacher term{temperature_part}"
    options = ", ".join(f"{key}={value:g}" for key, value in spec.parse_options(loss_kwargs).items())
    return f"its own weights ({options or 'none'}){temperature_part}; distillation.alpha is not read"


def describe_feature_term(feature_loss: str | None, feature_weight: float | None, pairs: int) -> str:
    """The feature method's part of a run's header: '' without one, else '; + 100 x fitnets on 1 layer pair
    (teacher live each step)'; feature_weight None: the loss's own default."""
    if feature_loss is None:
        return ""
    weight = FEATURE_LOSSES.get(feature_loss).weight if feature_weight is None else feature_weight
    plural = "s" if pairs != 1 else ""
    return f"; + {weight:g} x {feature_loss} on {pairs} layer pair{plural} (teacher live each step)"
