"""Attention transfer (AT; Zagoruyko & Komodakis, "Paying More Attention to Attention", ICLR 2017), as the
authors' code (szagoruyko/attention-transfer, utils.at / at_loss) and mdistiller's AT distiller. A feature
map F (N, C, H, W) gives a spatial attention map, flattened and L2-normalised per sample:

    Q(F) = normalize( mean over channels of F^p ,  over the H*W positions )     (N, H*W), p = 2
    AT   = sum over layer pairs l of mean over N and H*W of (Q(s_l) - Q(t_l))^2

The step's loss is the recipe's logit loss + feature_weight * AT; feature_weight is the paper's beta, default
1000 (mdistiller's FEAT_LOSS_WEIGHT). Channels may differ between student and teacher (no adapter); the
spatial sizes need not match either: the larger map is average-pooled to the smaller (as mdistiller). (N, D)
features (an MLP's hidden layer) are one channel of D positions, (N, 1, 1, D): Q is then the normalised
squared activations.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

from kdedge.losses import FeatureLossSpec


class ATOptions(BaseModel):
    """distillation.feature_loss_kwargs of `feature_loss: at`."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    p: float = Field(2.0, gt=0)  # the power of the activations (the paper's p)


def attention_map(features: torch.Tensor, p: float = 2.0) -> torch.Tensor:
    """(N, C, H, W) -> (N, H*W): mean over channels of F^p (as the reference code: no absolute value),
    flattened and L2-normalised per sample."""
    return F.normalize(features.float().pow(p).mean(1).flatten(1), dim=1)


def _same_size(student: torch.Tensor, teacher: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Average-pool the spatially larger of two (N, C, H, W) maps to the other's H, W."""
    if student.shape[-2:] == teacher.shape[-2:]:
        return student, teacher
    if student.shape[-2] * student.shape[-1] > teacher.shape[-2] * teacher.shape[-1]:
        return F.adaptive_avg_pool2d(student, teacher.shape[-2:]), teacher
    return student, F.adaptive_avg_pool2d(teacher, student.shape[-2:])


def attention_transfer(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    targets: torch.Tensor,
    student_features: list[torch.Tensor],
    teacher_features: list[torch.Tensor],
    p: float = 2.0,
) -> torch.Tensor:
    """Sum over layer pairs of mean((Q(s) - Q(t))^2) (module docstring); features (N, C, H, W) or (N, D);
    a scalar. Logits and targets are not read."""
    losses = []
    for student, teacher in zip(student_features, teacher_features, strict=True):
        if student.dim() == 2:  # (N, D) -> (N, 1, 1, D): one channel, D positions
            student, teacher = student[:, None, None, :], teacher[:, None, None, :]
        student, teacher = _same_size(student, teacher)
        losses.append((attention_map(student, p) - attention_map(teacher, p)).pow(2).mean())
    return torch.stack(losses).sum()


# the table entry of kdedge/losses/__init__.py (imported on first use)
AT = FeatureLossSpec(attention_transfer, ATOptions, weight=1000.0)
