"""Hinton et al. (2015), section 3: a student distilled on a transfer set WITHOUT some classes has learned
low output biases for them; raising those biases by one shared value recovers most of the lost accuracy.

`distillation.bias_fix: 3.5` raises the output bias of every missing class by 3.5.
`distillation.bias_fix: auto` fits the value: a seeded HOLDOUT_FRACTION of the training images is kept out
of the student's data BEFORE the classes are removed, and used unlabelled: the shift is chosen so that the
student predicts the missing classes (argmax) exactly as often as the teacher does on those images (the
middle of the interval of shifts that match). The paper tuned its 3.5 on the test set; this needs no labels
and no test data, only unlabelled images of the world the model will see, which do contain the missing
classes. (Fitting on held-out TRANSFER images instead, which lack the missing classes, was tried first: the
teacher hardly predicts them there, so the fit was a negligible shift: 0.12 where 3.5 was needed.)

The unfixed student stays in RUN/student_unfixed.safetensors; RUN/student.safetensors is the fixed one.
summary.json gets "student" (before) and "student_bias_fixed" (after), both with omitted-class errors.
"""

from __future__ import annotations

import torch
from torch import nn

from kdedge.data.types import DataBundle, Split
from kdedge.errors import InputError, RuntimeFailure
from kdedge.models.builders import output_bias
from kdedge.recipe import Recipe
from kdedge.train.context import Context
from kdedge.train.evaluation import predict_logits, stage_summary

HOLDOUT_FRACTION = 0.1  # of the transfer set, for bias_fix: auto (the student never trains on it)


def missing_classes(recipe: Recipe, num_classes: int) -> list[int]:
    """Classes the student's transfer set lacks (omitted, or not kept)."""
    cfg = recipe.data
    kept = set(range(num_classes)) if cfg.keep_classes is None else set(cfg.keep_classes)
    return sorted(c for c in range(num_classes) if c not in kept or c in cfg.omit_classes)


def check_transfer_set(recipe: Recipe, num_classes: int) -> None:
    """Bad input, found before any training: a transfer set with no class left, or a bias fix without
    missing classes / without a teacher to fit against."""
    for cls in [*recipe.data.omit_classes, *(recipe.data.keep_classes or [])]:
        if not 0 <= cls < num_classes:
            raise InputError(f"data: class {cls} does not exist (classes are 0..{num_classes - 1})")
    missing = missing_classes(recipe, num_classes)
    if len(missing) == num_classes:
        raise InputError(
            f"data.omit_classes / data.keep_classes leave no class for the student (classes are 0..{num_classes - 1})"
        )
    fix = recipe.distillation.bias_fix
    if fix is None:
        return
    if not missing:
        raise InputError(
            f"distillation.bias_fix: {fix} needs a transfer set with classes left out "
            "(set data.omit_classes or data.keep_classes), this recipe omits none"
        )
    if fix == "auto" and recipe.teacher is None:
        raise InputError("distillation.bias_fix: auto fits the shift to the teacher; the recipe has no teacher")


def split_holdout(train: Split, recipe: Recipe) -> tuple[Split, Split | None]:
    """(the rest, held-out part) of the training images, all classes, before the transfer set is filtered;
    the held-out part only for bias_fix: auto. Neither the student's training nor its labels see it."""
    if recipe.distillation.bias_fix != "auto":
        return train, None
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(recipe.seed + 1))
    held = max(1, int(len(train) * HOLDOUT_FRACTION))
    return train.subset(order[held:].sort().values), train.subset(order[:held].sort().values)


def missing_rate(logits: torch.Tensor, missing: list[int], shift: float = 0.0) -> float:
    """Fraction of rows whose argmax is one of the `missing` classes after adding `shift` to their logits
    (non-decreasing in shift). logits: (N, C) float32."""
    shifted = logits.clone()
    shifted[:, missing] += shift
    return float(torch.isin(shifted.argmax(1), torch.tensor(missing, device=logits.device)).float().mean())


def fit_shift(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    missing: list[int],
    low: float = -50.0,
    high: float = 50.0,
) -> float:
    """The bias shift s at which the student predicts the `missing` classes as often as the teacher:
    the middle of [first s reaching the teacher's rate, first s exceeding it], by two bisections.
    student_logits, teacher_logits: (N, C) on the same held-out images."""
    target = missing_rate(teacher_logits, missing)
    if not 0 < target < 1:
        raise RuntimeFailure(
            f"bias_fix auto: the teacher predicts the missing classes {missing} on "
            f"{target:.0%} of the held-out images; nothing to match "
            "(set a fixed bias_fix)"
        )
    reaches = _bisect(lambda s: missing_rate(student_logits, missing, s) >= target, low, high)
    exceeds = _bisect(lambda s: missing_rate(student_logits, missing, s) > target, low, high)
    return round((reaches + exceeds) / 2, 4)


def _bisect(holds, low: float, high: float, steps: int = 60) -> float:
    """The smallest s in [low, high] where the monotone predicate holds(s) turns true (to ~1e-16)."""
    for _ in range(steps):
        middle = (low + high) / 2
        low, high = (low, middle) if holds(middle) else (middle, high)
    return high


def omitted_errors(summary: dict, missing: list[int], bundle: DataBundle) -> dict:
    """Errors on the test images of the missing classes: {"omitted_class_errors", "omitted_class_count"}."""
    counts = torch.bincount(bundle.test.labels, minlength=bundle.num_classes)
    return {
        "omitted_classes": missing,
        "omitted_class_errors": int(sum(summary["per_class_errors"][c] for c in missing)),
        "omitted_class_count": int(sum(counts[c] for c in missing)),
    }


def raise_bias(student: nn.Module, missing: list[int], shift: float) -> None:
    """Add `shift` to the output bias of the `missing` classes, in place."""
    with torch.no_grad():
        output_bias(student)[missing] += shift


def apply_bias_fix(
    recipe: Recipe,
    bundle: DataBundle,
    student: nn.Module,
    student_entry: dict,
    teacher: nn.Module | None,
    holdout: Split | None,
    ctx: Context,
) -> dict[str, dict]:
    """Fix `student` in place; returns its summary entries {'student': `student_entry` (the unfixed
    student's) with its omitted-class errors, 'student_bias_fixed': the fixed student's}. Writes nothing:
    the pipeline saves both students."""
    missing = missing_classes(recipe, bundle.num_classes)
    fix = recipe.distillation.bias_fix
    if fix == "auto":
        teacher_logits = predict_logits(teacher, holdout.images, ctx)
        shift = fit_shift(predict_logits(student, holdout.images, ctx), teacher_logits, missing)
        how = {
            "bias_fix": "auto",
            "holdout_images": len(holdout),
            "holdout_teacher_missing_rate": missing_rate(teacher_logits, missing),
        }
    else:
        shift, how = float(fix), {"bias_fix": float(fix)}
    before = student_entry | omitted_errors(student_entry, missing, bundle)
    raise_bias(student, missing, shift)
    fixed = stage_summary(student, bundle, ctx, recipe.student, {})
    fixed |= omitted_errors(fixed, missing, bundle) | how | {"bias_shift": shift}
    return {"student": before, "student_bias_fixed": fixed}
