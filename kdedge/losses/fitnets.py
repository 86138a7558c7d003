"""FitNets' hint loss (Romero, Ballas, Kahou, Chassang, Gatta, Bengio, "FitNets: Hints for Thin Deep Nets",
ICLR 2015), as mdistiller's FitNet distiller (mdistiller/distillers/FitNet.py): the student's hint layer goes
through a learnable regressor r (a 1x1 conv for (N, C, H, W) features, a linear layer for (N, D) ones; made by
kdedge.train.features and dropped at export) to the teacher's shape, then

    hint = sum over layer pairs l of mean over elements (r_l(s_l) - t_l)^2        (MSE, mean reduction)

The step's loss is the recipe's logit loss + feature_weight * hint; feature_weight defaults to mdistiller's
FEAT_LOSS_WEIGHT, 100. (The paper trains the hint stage first, then KD; mdistiller and kdedge add both terms
in one stage.)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kdedge.losses import FeatureLossSpec


def fitnets_hint(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    targets: torch.Tensor,
    student_features: list[torch.Tensor],
    teacher_features: list[torch.Tensor],
) -> torch.Tensor:
    """Sum over pairs of MSE(student feature after its regressor, teacher feature): each pair (N, ...) with
    equal shapes; a scalar. Logits and targets are not read."""
    losses = [F.mse_loss(s.float(), t.float()) for s, t in zip(student_features, teacher_features, strict=True)]
    return torch.stack(losses).sum()


# the table entry of kdedge/losses/__init__.py (imported on first use)
FITNETS = FeatureLossSpec(fitnets_hint, weight=100.0, adapter=True)
