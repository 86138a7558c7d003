"""DIST (kdedge.losses.dist) against a value worked out without torch (statistics.correlation on the
probabilities written as fractions), and against a transcription of the reference code."""

from __future__ import annotations

import math
import statistics

import pytest
import torch
import torch.nn.functional as F

from kdedge.losses import LOSSES
from kdedge.losses.dist import dist, dist_relations

TAU = 2.0
# logits = tau * ln(w): at temperature tau the softmax is w / sum(w); at 1 it is w^2 / sum(w^2)
STUDENT_W = [[1, 2, 1], [1, 1, 2], [3, 1, 4]]
TEACHER_W = [[2, 1, 1], [1, 1, 2], [1, 3, 4]]
TARGETS = [0, 2, 1]


def _logits(weights: list[list[int]]) -> torch.Tensor:
    return torch.tensor([[TAU * math.log(w) for w in row] for row in weights], dtype=torch.float64)


def _probs(weights: list[list[int]]) -> list[list[float]]:
    return [[w / sum(row) for w in row] for row in weights]


def _hand_relations() -> tuple[float, float]:
    """(inter, intra) with tau^2, from Python's statistics.correlation (Pearson's r)."""
    ps, pt = _probs(STUDENT_W), _probs(TEACHER_W)
    inter = 1 - statistics.mean(statistics.correlation(s, t) for s, t in zip(ps, pt, strict=True))
    columns = range(3)
    intra = 1 - statistics.mean(statistics.correlation([r[j] for r in ps], [r[j] for r in pt]) for j in columns)
    return TAU**2 * inter, TAU**2 * intra


def test_relations_match_pearson_by_hand() -> None:
    inter, intra = dist_relations(_logits(STUDENT_W), _logits(TEACHER_W), TAU)
    hand_inter, hand_intra = _hand_relations()
    # row 1 is the same for both (r = 1); row 0: [1/4, 1/2, 1/4] vs [1/2, 1/4, 1/4] gives r = -1/2
    assert statistics.correlation([0.25, 0.5, 0.25], [0.5, 0.25, 0.25]) == pytest.approx(-0.5)
    assert float(inter) == pytest.approx(hand_inter, rel=1e-7)
    assert float(intra) == pytest.approx(hand_intra, rel=1e-7)


@pytest.mark.parametrize(
    ("inter_weight", "intra_weight", "kd_weight", "ce_weight"), [(1.0, 1.0, 2.0, 1.0), (0.5, 3.0, 1.0, 0.2)]
)
def test_dist_matches_hand_computed_value(inter_weight, intra_weight, kd_weight, ce_weight) -> None:
    hand_inter, hand_intra = _hand_relations()
    # cross-entropy at temperature 1: probabilities w^2 / sum(w^2)
    ce = statistics.mean(-math.log(w[y] ** 2 / sum(v**2 for v in w)) for w, y in zip(STUDENT_W, TARGETS, strict=True))
    expected = ce_weight * ce + kd_weight * (inter_weight * hand_inter + intra_weight * hand_intra)
    loss = dist(
        _logits(STUDENT_W),
        _logits(TEACHER_W),
        torch.tensor(TARGETS),
        TAU,
        inter_weight=inter_weight,
        intra_weight=intra_weight,
        kd_weight=kd_weight,
        ce_weight=ce_weight,
    )
    assert float(loss) == pytest.approx(expected, rel=1e-7)


def _reference_dist(z_s, z_t, beta=1.0, gamma=1.0, tau=1.0):
    """hunto/image_classification_sota lib/models/losses/dist_kd.py DIST.forward, transcribed."""

    def pearson(a, b, eps=1e-8):
        a, b = a - a.mean(1).unsqueeze(1), b - b.mean(1).unsqueeze(1)
        return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1) + eps)

    y_s, y_t = (z_s / tau).softmax(dim=1), (z_t / tau).softmax(dim=1)
    inter = tau**2 * (1 - pearson(y_s, y_t).mean())
    intra = tau**2 * (1 - pearson(y_s.transpose(0, 1), y_t.transpose(0, 1)).mean())
    return beta * inter + gamma * intra


def test_dist_equals_the_reference_code_on_random_logits() -> None:
    generator = torch.Generator().manual_seed(0)
    student = torch.randn(32, 10, generator=generator) * 2
    teacher = torch.randn(32, 10, generator=generator) * 4
    targets = torch.randint(0, 10, (32,), generator=generator)
    ours = dist(student, teacher, targets, 4.0, inter_weight=1.0, intra_weight=2.0)
    reference = F.cross_entropy(student, targets) + 2.0 * _reference_dist(student, teacher, 1.0, 2.0, 4.0)
    assert float(ours) == pytest.approx(float(reference), rel=1e-5)


def test_identical_logits_leave_only_the_hard_term() -> None:
    logits = torch.randn(8, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 3
    targets = torch.zeros(8, dtype=torch.long)
    # r = 1 exactly but for the reference's 1e-8 in the denominator of the cosine
    assert float(dist(logits, logits, targets, 1.0)) == pytest.approx(float(F.cross_entropy(logits, targets)), abs=1e-6)


def test_dist_is_in_the_table_with_typed_options() -> None:
    spec = LOSSES.get("dist")
    assert spec.inputs == {"temperature", "class_weights"}
    assert spec.parse_options({}) == {"inter_weight": 1.0, "intra_weight": 1.0, "kd_weight": 2.0, "ce_weight": 1.0}
    with pytest.raises(ValueError, match=r"loss_kwargs.beta: Extra inputs .*options of this loss: inter_weight"):
        spec.parse_options({"beta": 1.0})
