"""Distillation losses against values worked out by hand, and the T^2 gradient scaling."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from kdedge.losses import LOSSES
from kdedge.losses.classic import hard_only, hinton_kd, kl_kd

# Logits chosen so that the softmaxes are simple fractions (worked out below with `math`, not torch).
# Row 0: student [0, 2 ln 3] -> softmax at T=2 is [1/4, 3/4], at T=1 [1/10, 9/10];
#        teacher [0, 0] -> [1/2, 1/2].
# Row 1: student [0, 0]      -> [1/2, 1/2] at any T;             teacher [2 ln 3, 0] at T=2 -> [3/4, 1/4].
STUDENT = torch.tensor([[0.0, 2 * math.log(3)], [0.0, 0.0]])
TEACHER = torch.tensor([[0.0, 0.0], [2 * math.log(3), 0.0]])
TARGETS = torch.tensor([1, 0])
T = 2.0


def _hard_ce() -> float:
    # row 0: -ln(9/10); row 1: -ln(1/2)
    return (-math.log(0.9) - math.log(0.5)) / 2


def test_registry_names_the_losses() -> None:
    assert LOSSES.names() == ["dist", "dkd", "hinton", "kl", "none"]


def test_none_is_plain_cross_entropy_and_ignores_teacher() -> None:
    loss = hard_only(STUDENT, None, TARGETS, alpha=0.9, temperature=T)
    assert float(loss) == pytest.approx(_hard_ce(), rel=1e-6)


def test_hinton_matches_hand_computed_value() -> None:
    alpha = 0.7
    soft_ce_row0 = -(0.5 * math.log(0.25) + 0.5 * math.log(0.75))
    soft_ce_row1 = -(0.75 * math.log(0.5) + 0.25 * math.log(0.5))
    expected = alpha * T**2 * (soft_ce_row0 + soft_ce_row1) / 2 + (1 - alpha) * _hard_ce()
    loss = hinton_kd(STUDENT, TEACHER, TARGETS, alpha=alpha, temperature=T)
    assert float(loss) == pytest.approx(expected, rel=1e-6)


def test_kl_matches_hand_computed_value_with_batchmean() -> None:
    alpha = 0.5
    kl_row0 = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    kl_row1 = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    batchmean = (kl_row0 + kl_row1) / 2  # mean over the 2 samples, NOT over the 4 elements
    loss = kl_kd(STUDENT, TEACHER, TARGETS, alpha=alpha, temperature=T)
    assert float(loss) == pytest.approx(alpha * T**2 * batchmean + (1 - alpha) * _hard_ce(), rel=1e-6)
    per_element = (kl_row0 + kl_row1) / 4
    assert float(loss) != pytest.approx(alpha * T**2 * per_element + (1 - alpha) * _hard_ce(), rel=1e-3)


def test_alpha_is_the_weight_of_the_soft_term() -> None:
    only_soft = kl_kd(STUDENT, TEACHER, TARGETS, alpha=1.0, temperature=T)
    only_hard = kl_kd(STUDENT, TEACHER, TARGETS, alpha=0.0, temperature=T)
    assert float(only_hard) == pytest.approx(_hard_ce(), rel=1e-6)
    kl_rows = 0.5 * math.log(2) + 0.5 * math.log(2 / 3) + 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    assert float(only_soft) == pytest.approx(T**2 * kl_rows / 2, rel=1e-6)  # no hard-label term at all


def test_kl_is_zero_when_student_equals_teacher() -> None:
    logits = torch.randn(8, 10, generator=torch.Generator().manual_seed(0))
    assert float(kl_kd(logits, logits, torch.zeros(8, dtype=torch.long), alpha=1.0, temperature=3.0)) == pytest.approx(
        0.0, abs=1e-6
    )


@pytest.mark.parametrize("loss_fn", [hinton_kd, kl_kd])
@pytest.mark.parametrize("temperature", [1.0, 4.0, 20.0])
def test_soft_gradient_is_alpha_T_times_probability_difference(loss_fn, temperature: float) -> None:
    """d/ds [alpha T^2 soft(s/T)] = alpha * T * (q_s - q_t) / N exactly (Hinton et al. 2015, eq. 2)."""
    generator = torch.Generator().manual_seed(1)
    student = torch.randn(6, 5, generator=generator, requires_grad=True)
    teacher = torch.randn(6, 5, generator=generator)
    alpha = 0.8
    loss_fn(student, teacher, torch.zeros(6, dtype=torch.long), alpha, temperature).backward()
    hard = torch.autograd.grad(F.cross_entropy(student, torch.zeros(6, dtype=torch.long)), student)[0]
    q_s, q_t = F.softmax(student.detach() / temperature, 1), F.softmax(teacher / temperature, 1)
    expected = alpha * temperature * (q_s - q_t) / 6 + (1 - alpha) * hard
    torch.testing.assert_close(student.grad, expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("loss_fn", [hinton_kd, kl_kd])
def test_T_squared_keeps_the_soft_gradient_magnitude_independent_of_T(loss_fn) -> None:
    """For zero-mean logits and high T the soft gradient tends to (s - t) / (N C): the same at T=10 and T=100.
    Without the T^2 factor it would shrink 100-fold between the two."""
    generator = torch.Generator().manual_seed(2)
    student_base = torch.randn(4, 10, generator=generator)
    student_base -= student_base.mean(1, keepdim=True)
    teacher = torch.randn(4, 10, generator=generator)
    teacher -= teacher.mean(1, keepdim=True)
    grads = {}
    for temperature in (10.0, 100.0):
        student = student_base.clone().requires_grad_(True)
        loss_fn(student, teacher, torch.zeros(4, dtype=torch.long), 1.0, temperature).backward()
        grads[temperature] = student.grad
    limit = (student_base - teacher) / (4 * 10)
    torch.testing.assert_close(grads[100.0], limit, rtol=0.0, atol=0.02 * float(limit.abs().max()))
    ratio = grads[10.0].norm() / grads[100.0].norm()
    assert 0.9 < float(ratio) < 1.1


def test_class_weights_weight_the_hard_term_only() -> None:
    weights = torch.tensor([3.0, 1.0])
    weighted = hinton_kd(STUDENT, TEACHER, TARGETS, alpha=0.0, temperature=T, class_weights=weights)
    # weighted mean: (1 * -ln 0.9 + 3 * -ln 0.5) / (1 + 3)
    assert float(weighted) == pytest.approx((-math.log(0.9) - 3 * math.log(0.5)) / 4, rel=1e-6)
