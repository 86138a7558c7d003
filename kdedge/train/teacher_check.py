"""Is the teacher better than guessing? A student distilled from a teacher at chance learns nothing from it,
so a run says so loudly (one warning line and a summary flag) instead of reporting the student silently.

"Chance" is the best constant guess on the test split: the share of its most frequent class (1/num_classes
on a balanced set, more on an imbalanced one such as RetinaMNIST, where always answering grade 0 scores
43.5 %). A teacher counts as at chance unless it beats that by a margin: 5 accuracy points, or three
binomial standard deviations of a chance-level accuracy on this many test images when that is more (a
small test split cannot tell 12 % from 10 %).
"""

from __future__ import annotations

import math

import torch

MIN_MARGIN = 0.05  # accuracy points (as a fraction) a learning teacher must be above the constant guess


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


def teacher_verdict(test_accuracy: float, labels: torch.Tensor, num_classes: int) -> dict:
    """{'teacher_at_chance': bool, 'chance_accuracy': .., 'chance_threshold': ..} for the summary."""
    chance = chance_accuracy(labels, num_classes)
    threshold = min(1.0, chance + chance_margin(chance, len(labels)))
    return {
        "teacher_at_chance": bool(test_accuracy < threshold),
        "chance_accuracy": round(chance, 4),
        "chance_threshold": round(threshold, 4),
    }


def warning_line(stage_summary: dict, verdict: dict) -> str:
    """The one line a run prints (stderr) when its teacher is at chance."""
    return (
        f"warning: the teacher ({stage_summary.get('model')}) is at chance: test accuracy "
        f"{100 * stage_summary['test_accuracy']:.1f} % on {stage_summary.get('test_count')} images, "
        f"not above {100 * verdict['chance_threshold']:.1f} % (best constant guess "
        f"{100 * verdict['chance_accuracy']:.1f} % + margin); the student learns nothing from it: fix "
        "the teacher (lr, init, epochs) before reading the student's numbers"
    )
