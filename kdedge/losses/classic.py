"""The logit losses of Hinton et al. 2015 and its KL form, and plain cross-entropy (no teacher).

The calling convention of every loss is in kdedge/losses/__init__.py."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kdedge.losses import LossSpec


def inverse_frequency_weights(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Per-class weights (C,) inversely proportional to the class counts in labels (N,), mean 1: the
    hard-label term of imbalanced data (APTOS) then counts every class equally."""
    counts = torch.bincount(labels, minlength=num_classes).float().clamp(min=1)
    weights = counts.sum() / (len(counts) * counts)
    return weights / weights.mean()


def hard_only(
    student_logits, teacher_logits, targets, alpha: float, temperature: float, class_weights: torch.Tensor | None = None
) -> torch.Tensor:
    """CE(y, softmax(s)): no teacher; alpha and temperature are ignored."""
    return F.cross_entropy(student_logits, targets, weight=class_weights)


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


# the table entries of kdedge/losses/__init__.py (imported on first use)
NONE = LossSpec(hard_only)
HINTON = LossSpec(hinton_kd)
KL = LossSpec(kl_kd)
