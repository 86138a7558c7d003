"""kdedge.train.teacher_check: a teacher at chance (accuracy within a margin of the best constant guess, or
on graded data a QWK near 0) is one warning line and a summary flag; a learning teacher is not flagged."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from cli_helpers import tiny_overrides

from kdedge.files.rundir import RunDir
from kdedge.train.teacher_check import chance_accuracy, teacher_verdict

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_chance_is_the_best_constant_guess_plus_a_margin() -> None:
    balanced = torch.arange(10).repeat(100)  # 1,000 labels, 100 per class
    assert chance_accuracy(balanced, 10) == pytest.approx(0.1)
    assert teacher_verdict(0.10, balanced, 10)["teacher_at_chance"]
    assert teacher_verdict(0.14, balanced, 10)["teacher_at_chance"]  # 4 points up: within the margin
    assert not teacher_verdict(0.55, balanced, 10)["teacher_at_chance"]
    # imbalanced (RetinaMNIST's test split: 174 of 400 are grade 0): always "0" scores 43.5 %, which is chance
    skewed = torch.tensor([0] * 174 + [1] * 46 + [2] * 92 + [3] * 68 + [4] * 20)
    verdict = teacher_verdict(0.45, skewed, 5)
    assert verdict["chance_accuracy"] == pytest.approx(0.435) and verdict["teacher_at_chance"]
    assert not teacher_verdict(0.53, skewed, 5)["teacher_at_chance"]


def test_on_graded_data_a_teacher_that_ranks_the_grades_is_learning() -> None:
    """RetinaMNIST's ConvNeXt-T teacher: 0.495 accuracy (below 0.435 + margin) but QWK 0.495, where a constant
    guess has QWK 0: it learned. With QWK near 0 it is still at chance, and the line says both numbers."""
    from kdedge.train.teacher_check import warning_line

    skewed = torch.tensor([0] * 174 + [1] * 46 + [2] * 92 + [3] * 68 + [4] * 20)
    learning = teacher_verdict(0.495, skewed, 5, test_qwk=0.495)
    assert not learning["teacher_at_chance"] and learning["chance_qwk_threshold"] == pytest.approx(0.15)
    guessing = teacher_verdict(0.495, skewed, 5, test_qwk=0.04)
    assert guessing["teacher_at_chance"]
    teacher = {"model": "convnext_tiny", "test_accuracy": 0.495, "test_count": 400, "test_qwk": 0.04}
    line = warning_line(teacher, guessing)
    assert "QWK 0.040 not above 0.150" in line and "\n" not in line


def test_small_test_splits_need_a_wider_margin() -> None:
    few = torch.arange(10).repeat(3)  # 30 images: 3 sigma of a 10 % accuracy is 16 points
    threshold = teacher_verdict(0.2, few, 10)["chance_threshold"]
    assert threshold == pytest.approx(0.1 + 3 * math.sqrt(0.09 / 30), abs=1e-4)
    assert teacher_verdict(0.2, few, 10)["teacher_at_chance"]


def test_a_teacher_at_chance_is_a_warning_line_and_a_summary_flag(kdedge, data_root: Path, tmp_path: Path) -> None:
    # max_norm 1e-9 shrinks every weight to ~0 after each step: the teacher answers one class for all images
    result = kdedge(
        "distill",
        "hinton_mnist",
        *tiny_overrides("teacher.max_norm=1e-9"),
        "--out",
        tmp_path / "run",
        "--data-root",
        data_root,
        "-q",
    )
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "teacher (mlp) is at chance" in warnings[0], result.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["teacher"]["teacher_at_chance"] is True
    assert summary["teacher"]["test_accuracy"] < summary["teacher"]["chance_threshold"]
    assert summary["warnings"] == warnings and "student" in summary  # said, and the student still reported


def test_a_learning_teacher_is_not_flagged(finished_run) -> None:
    run, process = finished_run
    summary = RunDir(run).read_summary()
    assert summary["teacher"]["teacher_at_chance"] is False and "warnings" not in summary
    assert "warning:" not in process.stderr
