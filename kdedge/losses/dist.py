"""DIST (Huang, You, Wang, Qian, Xu, "Knowledge Distillation from A Stronger Teacher", NeurIPS 2022), as in its
official code: hunto/image_classification_sota, lib/models/losses/dist_kd.py (class DIST) and
lib/models/losses/kd_loss.py (how it is weighted beside the cross-entropy), linked from hunto/DIST_KD.

Instead of matching probabilities exactly, DIST matches their relations with Pearson correlation. With
Y_s = softmax(s / tau), Y_t = softmax(t / tau), both (N, C), and rho(u, v) = cos(u - mean(u), v - mean(v)):

    inter = tau^2 * (1 - mean over the N samples of rho(Y_s[i, :], Y_t[i, :]))   (each image's class ranking)
    intra = tau^2 * (1 - mean over the C classes of rho(Y_s[:, j], Y_t[:, j]))   (each class across the batch)

    loss = ce_weight * CE(y, softmax(s)) + kd_weight * (inter_weight * inter + intra_weight * intra)

cos uses (u . v) / (|u| |v| + 1e-8) as the reference. Defaults as the reference's configs: inter_weight
(beta) 1, intra_weight (gamma) 1, kd_weight 2 (`kd_loss_weight: 2.`), ce_weight 1 (`ori_loss_weight: 1.`).
tau is the recipe's distillation.temperature: the reference uses 1 on ImageNet (`kd: dist`) and 4 on
CIFAR-100 (`kd: dist_t4`, configs/strategies/distill/dist_cifar.yaml); kdedge's default temperature is 4.
distillation.alpha is not read. The intra term correlates over the batch, so it needs batches of 2 or more.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

from kdedge.losses import LossSpec


class DISTOptions(BaseModel):
    """distillation.loss_kwargs of `loss: dist` (the reference's DIST(beta, gamma) and loss weights)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    inter_weight: float = Field(1.0, ge=0)  # the paper's beta: per-image (inter-class) relation
    intra_weight: float = Field(1.0, ge=0)  # the paper's gamma: per-class (intra-class) relation
    kd_weight: float = Field(2.0, ge=0)  # the reference's kd_loss_weight
    ce_weight: float = Field(1.0, ge=0)  # the reference's ori_loss_weight


def pearson_rows(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Pearson correlation of each row of a with the same row of b: (N, C), (N, C) -> (N,)."""
    a = a - a.mean(1, keepdim=True)
    b = b - b.mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1) + eps)


def dist_relations(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(inter, intra) of the module docstring, each a scalar, tau^2 included; logits (N, C)."""
    student_probs = F.softmax(student_logits / temperature, dim=1)
    teacher_probs = F.softmax(teacher_logits / temperature, dim=1)
    inter = 1 - pearson_rows(student_probs, teacher_probs).mean()
    intra = 1 - pearson_rows(student_probs.T, teacher_probs.T).mean()
    return temperature**2 * inter, temperature**2 * intra


def dist(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    targets: torch.Tensor,
    temperature: float,
    class_weights: torch.Tensor | None = None,
    inter_weight: float = 1.0,
    intra_weight: float = 1.0,
    kd_weight: float = 2.0,
    ce_weight: float = 1.0,
) -> torch.Tensor:
    """ce_weight * CE(y, s) + kd_weight * (inter_weight * inter + intra_weight * intra); logits (N, C) float,
    targets (N,) int64, class_weights (C,) or None for the hard term; returns a scalar."""
    inter, intra = dist_relations(student_logits, teacher_logits, temperature)
    hard_ce = F.cross_entropy(student_logits, targets, weight=class_weights)
    return ce_weight * hard_ce + kd_weight * (inter_weight * inter + intra_weight * intra)


# the table entry of kdedge/losses/__init__.py (imported on first use)
DIST = LossSpec(dist, DISTOptions, frozenset({"temperature", "class_weights"}))
