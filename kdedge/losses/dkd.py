"""Decoupled Knowledge Distillation (DKD; Zhao, Cui, Song, Qiu, Liang, "Decoupled Knowledge Distillation",
CVPR 2022), as in its official code: megvii-research/mdistiller, mdistiller/distillers/DKD.py (dkd_loss and
DKD.forward_train) with the defaults of mdistiller/engine/cfg.py (CFG.DKD).

Hinton's KD term splits into two parts at the target class y. With p = softmax(z / T) over C classes:

    b = [p_y, 1 - p_y]                              the binary target / non-target split, (N, 2)
    p^ = softmax over the C - 1 non-target classes  (z_y masked out), (N, C)
    TCKD = T^2 * KL(b_teacher || b_student)          batchmean
    NCKD = T^2 * KL(p^_teacher || p^_student)        batchmean

    loss = ce_weight * CE(y, softmax(s)) + warm(epoch) * (tckd_weight * TCKD + nckd_weight * NCKD)
    warm(epoch) = min(epoch / warmup_epochs, 1), epoch counted from 1 (mdistiller's trainer), constant
                  within an epoch; warmup_epochs = 0: no warm-up

tckd_weight is the paper's alpha (1.0), nckd_weight its beta (8.0; mdistiller's CIFAR-100 configs use 8, 6 or
2 by pair, its ImageNet ones 0.5 and 2), warmup_epochs 20 of a 240-epoch run, ce_weight 1.0. T is the recipe's
distillation.temperature (mdistiller's default 4.0 is kdedge's default too). distillation.alpha is not read:
DKD weighs its terms with its own options. A recipe of few epochs wants a shorter warm-up (mdistiller's
ImageNet configs use 1 of 100): with the default 20, a 10-epoch run never reaches the full DKD term.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

from kdedge.losses import LossSpec, TrainingProgress


class DKDOptions(BaseModel):
    """distillation.loss_kwargs of `loss: dkd` (mdistiller CFG.DKD: ALPHA, BETA, CE_WEIGHT, WARMUP)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    tckd_weight: float = Field(1.0, ge=0)  # the paper's alpha: target-class term
    nckd_weight: float = Field(8.0, ge=0)  # the paper's beta: non-target-class term
    ce_weight: float = Field(1.0, ge=0)  # the hard-label cross-entropy
    warmup_epochs: float = Field(20.0, ge=0)  # the DKD term ramps up linearly over these epochs


def warmup_factor(progress: TrainingProgress, warmup_epochs: float) -> float:
    """min(epoch / warmup_epochs, 1) with the epoch counted from 1, as mdistiller's DKD.forward_train."""
    return 1.0 if warmup_epochs == 0 else min((progress.epoch + 1) / warmup_epochs, 1.0)


def decoupled_kd(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    targets: torch.Tensor,
    temperature: float,
    tckd_weight: float,
    nckd_weight: float,
) -> torch.Tensor:
    """tckd_weight * TCKD + nckd_weight * NCKD (module docstring), a scalar; logits (N, C), targets (N,)."""
    target_mask = F.one_hot(targets, student_logits.shape[1]).to(student_logits.dtype)  # (N, C)
    # the binary split in log space: log p_y and log(1 - p_y) = logsumexp over the other classes - logsumexp
    # over all (mdistiller takes torch.log of the summed probabilities: the same value, less prone to log 0)
    log_binary_student = _log_binary(student_logits / temperature, target_mask)
    log_binary_teacher = _log_binary(teacher_logits / temperature, target_mask)
    tckd = F.kl_div(log_binary_student, log_binary_teacher, reduction="batchmean", log_target=True)
    # the non-target distribution: mdistiller subtracts 1000 from the target logit (after dividing by T)
    log_other_student = F.log_softmax(student_logits / temperature - 1000.0 * target_mask, dim=1)
    other_teacher = F.softmax(teacher_logits / temperature - 1000.0 * target_mask, dim=1)
    nckd = F.kl_div(log_other_student, other_teacher, reduction="batchmean")
    return temperature**2 * (tckd_weight * tckd + nckd_weight * nckd)


def _log_binary(scaled_logits: torch.Tensor, target_mask: torch.Tensor) -> torch.Tensor:
    """(N, C) logits / T -> (N, 2) [log p_y, log(1 - p_y)]."""
    log_all = torch.logsumexp(scaled_logits, dim=1)
    log_target = (scaled_logits * target_mask).sum(1) - log_all
    log_others = torch.logsumexp(scaled_logits.masked_fill(target_mask.bool(), float("-inf")), dim=1) - log_all
    return torch.stack([log_target, log_others], dim=1)


def dkd(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    targets: torch.Tensor,
    temperature: float,
    progress: TrainingProgress,
    class_weights: torch.Tensor | None = None,
    tckd_weight: float = 1.0,
    nckd_weight: float = 8.0,
    ce_weight: float = 1.0,
    warmup_epochs: float = 20.0,
) -> torch.Tensor:
    """ce_weight * CE(y, s) + warm(epoch) * DKD term (module docstring); logits (N, C) float, targets (N,)
    int64, class_weights (C,) or None for the hard term; returns a scalar."""
    hard_ce = F.cross_entropy(student_logits, targets, weight=class_weights)
    warm = warmup_factor(progress, warmup_epochs)
    return ce_weight * hard_ce + warm * decoupled_kd(
        student_logits, teacher_logits, targets, temperature, tckd_weight, nckd_weight
    )


# the table entry of kdedge/losses/__init__.py (imported on first use)
DKD = LossSpec(dkd, DKDOptions, frozenset({"temperature", "class_weights", "progress"}))
