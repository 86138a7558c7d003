"""Is the teacher better than guessing? A student distilled from a teacher at chance learns nothing from it,
so a run says so loudly (one warning line and a summary flag) instead of reporting the student silently.

"Chance" is the best constant guess on the test split: the share of its most frequent class (1/num_classes
on a balanced set, more on an imbalanced one such as RetinaMNIST, where always answering grade 0 scores
43.5 %). A teacher counts as at chance unless it beats that by a margin: 5 accuracy points, or three
binomial standard deviations of a chance-level accuracy on this many test images when that is more (a
small test split cannot tell 12 % from 10 %).

On ordinal data (grades: APTOS, RetinaMNIST) accuracy alone misjudges: the best published RetinaMNIST models
score 0.49-0.53 against the constant guess's 0.435, yet rank the grades well. There a constant guess has a
quadratic weighted kappa of exactly 0, so a teacher whose QWK is clearly above 0 (QWK_SIGMAS / sqrt(N): a
kappa's standard error under chance agreement is at most about 1 / sqrt(N)) has learned, whatever its
accuracy.
"""

from __future__ import annotations

import math

import torch

MIN_MARGIN = 0.05  # accuracy points (as a fraction) a learning teacher must be above the constant guess
QWK_SIGMAS = 3.0  # ordinal data: a teacher with QWK >= QWK_SIGMAS / sqrt(test images) is learning


def chance_accuracy(labels: torch.Tensor, num_classes: int) -> float:
    """Accuracy of always predicting the most frequent class of `labels` ((N,) int64); 1/num_classes when
    the split is empty."""
    if len(labels) == 0:
        return 1.0 / num_classes
    return float(torch.bincount(labels, minlength=num_classes).max()) / len(labels)


def chance_margin(chance: float, count: int) -> float:
    """How far above `chance` an accuracy on `count` images must be to count as learning."""
    sigma = math.sqrt(chance * (1 - chance) / max(count, 1))
    return max(MIN_MARGIN, 3 * sigma)


def teacher_verdict(
    test_accuracy: float, labels: torch.Tensor, num_classes: int, test_qwk: float | None = None
) -> dict:
    """{'teacher_at_chance': bool, 'chance_accuracy': .., 'chance_threshold': ..} for the summary; with
    `test_qwk` (ordinal data sets only) also 'chance_qwk_threshold', and a QWK above it is learning."""
    chance = chance_accuracy(labels, num_classes)
    threshold = min(1.0, chance + chance_margin(chance, len(labels)))
    at_chance = test_accuracy < threshold
    verdict = {"chance_accuracy": round(chance, 4), "chance_threshold": round(threshold, 4)}
    if test_qwk is not None:
        qwk_threshold = QWK_SIGMAS / math.sqrt(max(len(labels), 1))
        at_chance = at_chance and test_qwk < qwk_threshold
        verdict["chance_qwk_threshold"] = round(qwk_threshold, 4)
    return {"teacher_at_chance": bool(at_chance)} | verdict


def warning_line(stage_summary: dict, verdict: dict) -> str:
    """The one line a run prints (stderr) when its teacher is at chance."""
    return (
        f"warning: the teacher ({stage_summary.get('model')}) is at chance: test accuracy "
        f"{100 * stage_summary['test_accuracy']:.1f} % on {stage_summary.get('test_count')} images, "
        f"not above {100 * verdict['chance_threshold']:.1f} % (best constant guess "
        f"{100 * verdict['chance_accuracy']:.1f} % + margin)"
        + (
            f" and QWK {stage_summary.get('test_qwk', 0.0):.3f} not above {verdict['chance_qwk_threshold']:.3f}"
            if "chance_qwk_threshold" in verdict
            else ""
        )
        + "; the student learns nothing from it: fix "
        "the teacher (lr, init, epochs) before reading the student's numbers"
    )
