"""DKD (kdedge.losses.dkd) against a value worked out by hand with `math`, its warm-up, and against a
transcription of the reference code (mdistiller/distillers/DKD.py) on random logits."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from kdedge.errors import InputError
from kdedge.losses import LOSSES, TrainingProgress, describe_weights
from kdedge.losses.dkd import dkd, warmup_factor
from kdedge.recipe import validate_recipe

T = 2.0
# logits = T * ln(w): at temperature T the softmax is w / sum(w); at T=1 it is w^2 / sum(w^2)
STUDENT_W = [[1, 2, 1], [1, 1, 2]]
TEACHER_W = [[2, 1, 1], [1, 3, 4]]
TARGETS = [0, 1]


def _logits(weights: list[list[int]]) -> torch.Tensor:
    return torch.tensor([[T * math.log(w) for w in row] for row in weights], dtype=torch.float64)


def _kl(p: list[float], q: list[float]) -> float:
    return sum(a * math.log(a / b) for a, b in zip(p, q, strict=True))


def _hand_terms() -> tuple[float, float, float]:
    """(mean TCKD, mean NCKD, mean CE) by hand, T^2 not applied."""
    tckd, nckd, ce = [], [], []
    for student, teacher, y in zip(STUDENT_W, TEACHER_W, TARGETS, strict=True):
        ps, pt = [w / sum(student) for w in student], [w / sum(teacher) for w in teacher]
        tckd.append(_kl([pt[y], 1 - pt[y]], [ps[y], 1 - ps[y]]))  # KL(teacher || student)
        others_s = [p / (1 - ps[y]) for i, p in enumerate(ps) if i != y]
        others_t = [p / (1 - pt[y]) for i, p in enumerate(pt) if i != y]
        nckd.append(_kl(others_t, others_s))
        ce.append(-math.log(student[y] ** 2 / sum(w**2 for w in student)))
    return sum(tckd) / 2, sum(nckd) / 2, sum(ce) / 2


def test_hand_terms_are_the_fractions_written_out() -> None:
    # row 0: student [1/4, 1/2, 1/4], teacher [1/2, 1/4, 1/4], target 0: b_s = [1/4, 3/4], b_t = [1/2, 1/2];
    # non-target: student [2/3, 1/3], teacher [1/2, 1/2]
    tckd0 = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    nckd0 = 0.5 * math.log(0.5 / (2 / 3)) + 0.5 * math.log(0.5 / (1 / 3))
    # row 1: student [1/4, 1/4, 1/2], teacher [1/8, 3/8, 1/2], target 1: b_s = [1/4, 3/4], b_t = [3/8, 5/8];
    # non-target (classes 0, 2): student [1/3, 2/3], teacher [1/5, 4/5]
    tckd1 = 3 / 8 * math.log((3 / 8) / (1 / 4)) + 5 / 8 * math.log((5 / 8) / (3 / 4))
    nckd1 = 1 / 5 * math.log((1 / 5) / (1 / 3)) + 4 / 5 * math.log((4 / 5) / (2 / 3))
    tckd, nckd, ce = _hand_terms()
    assert tckd == pytest.approx((tckd0 + tckd1) / 2) and nckd == pytest.approx((nckd0 + nckd1) / 2)
    assert ce == pytest.approx(math.log(6))  # both rows: target weight 1 of 1 + 4 + 1 (T=1 squares the weights)


@pytest.mark.parametrize(("tckd_weight", "nckd_weight", "ce_weight"), [(1.0, 8.0, 1.0), (0.5, 2.0, 0.3)])
def test_dkd_matches_hand_computed_value(tckd_weight: float, nckd_weight: float, ce_weight: float) -> None:
    tckd, nckd, ce = _hand_terms()
    expected = ce_weight * ce + T**2 * (tckd_weight * tckd + nckd_weight * nckd)
    done = TrainingProgress(epoch=30, epochs=40)  # past the warm-up
    loss = dkd(
        _logits(STUDENT_W),
        _logits(TEACHER_W),
        torch.tensor(TARGETS),
        T,
        done,
        tckd_weight=tckd_weight,
        nckd_weight=nckd_weight,
        ce_weight=ce_weight,
    )
    assert float(loss) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize(
    ("epoch", "warmup", "factor"), [(0, 20, 1 / 20), (4, 20, 5 / 20), (19, 20, 1.0), (50, 20, 1.0), (0, 0, 1.0)]
)
def test_warm_up_counts_epochs_from_one_like_mdistiller(epoch: int, warmup: float, factor: float) -> None:
    progress = TrainingProgress(epoch=epoch, epochs=60, step=7, steps_per_epoch=10)
    assert warmup_factor(progress, warmup) == pytest.approx(factor)
    tckd, nckd, ce = _hand_terms()
    loss = dkd(_logits(STUDENT_W), _logits(TEACHER_W), torch.tensor(TARGETS), T, progress, warmup_epochs=warmup)
    assert float(loss) == pytest.approx(ce + factor * T**2 * (tckd + 8 * nckd), rel=1e-9)


def _mdistiller_dkd_loss(logits_student, logits_teacher, target, alpha, beta, temperature):
    """mdistiller/distillers/DKD.py dkd_loss, transcribed (size_average=False is reduction='sum')."""
    gt_mask = torch.zeros_like(logits_student).scatter_(1, target.unsqueeze(1), 1).bool()
    other_mask = torch.ones_like(logits_student).scatter_(1, target.unsqueeze(1), 0).bool()
    pred_student = F.softmax(logits_student / temperature, dim=1)
    pred_teacher = F.softmax(logits_teacher / temperature, dim=1)

    def cat_mask(t):
        return torch.cat([(t * gt_mask).sum(1, keepdims=True), (t * other_mask).sum(1, keepdims=True)], dim=1)

    pred_student, pred_teacher = cat_mask(pred_student), cat_mask(pred_teacher)
    tckd = F.kl_div(torch.log(pred_student), pred_teacher, reduction="sum") * temperature**2 / target.shape[0]
    teacher_part2 = F.softmax(logits_teacher / temperature - 1000.0 * gt_mask, dim=1)
    log_student_part2 = F.log_softmax(logits_student / temperature - 1000.0 * gt_mask, dim=1)
    nckd = F.kl_div(log_student_part2, teacher_part2, reduction="sum") * temperature**2 / target.shape[0]
    return alpha * tckd + beta * nckd


def test_dkd_term_equals_the_reference_code_on_random_logits() -> None:
    generator = torch.Generator().manual_seed(0)
    student = torch.randn(16, 10, generator=generator, dtype=torch.float64) * 3
    teacher = torch.randn(16, 10, generator=generator, dtype=torch.float64) * 3
    targets = torch.randint(0, 10, (16,), generator=generator)
    progress = TrainingProgress(epoch=2, epochs=10)
    ours = dkd(student, teacher, targets, 4.0, progress, tckd_weight=1.0, nckd_weight=6.0, warmup_epochs=5)
    warm = 3 / 5  # epoch 3 (counted from 1) of a 5-epoch warm-up
    term = _mdistiller_dkd_loss(student, teacher, targets, 1.0, 6.0, 4.0)
    reference = F.cross_entropy(student, targets) + warm * term
    assert float(ours) == pytest.approx(float(reference), rel=1e-9)


def test_dkd_is_in_the_table_with_typed_options() -> None:
    spec = LOSSES.get("dkd")
    assert spec.inputs == {"temperature", "class_weights", "progress"}  # no alpha: DKD weighs its own terms
    assert spec.parse_options({}) == {"tckd_weight": 1.0, "nckd_weight": 8.0, "ce_weight": 1.0, "warmup_epochs": 20.0}
    recipe = {
        "name": "x",
        "data": {"name": "mnist"},
        "teacher": {"model": "mlp"},
        "student": {"model": "mlp"},
        "distillation": {"loss": "dkd", "loss_kwargs": {"warmup_epochs": -1}},
    }
    with pytest.raises(InputError, match=r"loss_kwargs.warmup_epochs: Input should be greater than or equal to 0"):
        validate_recipe(recipe)
    described = describe_weights("dkd", 0.5, 4.0, {"nckd_weight": 2})
    assert described == (
        "its own weights (tckd_weight=1, nckd_weight=2, ce_weight=1, warmup_epochs=20), T=4; "
        "distillation.alpha is not read"
    )
