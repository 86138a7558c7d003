"""Issue 17 (sections 2-3): a teacher at chance is said loudly, warm-up makes short runs learn, the AlexNet
teacher's initialisation keeps its signal, the CIFAR recipes validate and run on a few batches."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from cli_helpers import tiny_overrides
from torch import nn

from kdedge.files.rundir import RunDir
from kdedge.models.builders import build_model
from kdedge.recipe import load_recipe
from kdedge.train.optim import lr_factor, warmup_length
from kdedge.train.teacher_check import chance_accuracy, teacher_verdict

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# -- the chance check --------------------------------------------------------------------------------------
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


# -- warm-up -----------------------------------------------------------------------------------------------
def _stage(**values):
    return load_recipe("cifar10_resnet18").teacher.model_copy(update=values)


def test_warmup_ramps_linearly_then_follows_the_schedule() -> None:
    cfg = _stage(epochs=20, warmup_epochs=2, schedule="cosine")
    steps = 10
    ramp = [lr_factor(cfg, step, steps) for step in range(20)]
    assert ramp[0] == pytest.approx(1 / 20) and ramp[19] == pytest.approx(1.0)
    assert all(b > a for a, b in zip(ramp, ramp[1:], strict=False))  # strictly rising
    assert lr_factor(cfg, 20, steps) == pytest.approx(1.0)  # the cosine starts at its peak ...
    assert lr_factor(cfg, 110, steps) == pytest.approx(0.5)  # ... half-way through the remaining 18 epochs
    assert lr_factor(cfg, 199, steps) < 0.01


def test_warmup_is_capped_at_a_quarter_of_a_short_run() -> None:
    short = _stage(epochs=1, warmup_epochs=2, schedule="cosine")  # `--set teacher.epochs=1` on a warm recipe
    assert warmup_length(short) == 0.25
    factors = [lr_factor(short, step, 28) for step in range(28)]
    assert factors[6] == pytest.approx(1.0) and factors[-1] < 0.05  # warmed up in 7 steps, then decayed
    assert _stage(epochs=10, warmup_epochs=0.5).warmup_epochs == 0.5  # fractions of an epoch are allowed


# -- the AlexNet teacher's initialisation --------------------------------------------------------------------
def test_alexnet_keeps_its_signal_through_eight_layers() -> None:
    """PyTorch's default init shrinks a ReLU net's activations ~2x per layer: without batch norm the
    AlexNet's logits were ~1/50 of its input's scale and SGD never left the uniform guess."""
    torch.manual_seed(0)
    net = build_model("alexnet_cifar", 10, 3, 32).eval()
    with torch.no_grad():
        features = net[:-1](torch.randn(64, 3, 32, 32))  # the input of the last layer
    assert 0.3 < float(features.std()) < 10
    assert all(float(m.bias.abs().max()) == 0 for m in net.modules() if isinstance(m, nn.Conv2d))


# -- the CIFAR recipes -------------------------------------------------------------------------------------
def test_cifar_resnet_recipes_warm_up_and_follow_the_hardware() -> None:
    for name in (
        "cifar10_resnet18",
        "cifar10_resnet50",
        "cifar10_self_r18",
        "cifar10_self_r50",
        "cifar10_reverse_r50_from_r18",
    ):
        recipe = load_recipe(name)
        for stage in (recipe.teacher, recipe.student):
            if stage is not None:
                assert stage.warmup_epochs > 0 and stage.lr == 0.1, name


def test_alpha_study_teacher_recipe() -> None:
    recipe = load_recipe("cifar10_alexnet_smallcnn")
    assert recipe.teacher.model == "alexnet_cifar" and recipe.teacher.warmup_epochs > 0
    assert sorted(recipe.sweep.grid["distillation.alpha"]) == [0.0, 0.5, 1.0]


def test_gemm_peak_in_bf16_too() -> None:
    from kdedge.bench.peak import measure_peak

    for dtype in ("float32", "bfloat16"):
        answer = measure_peak({"device": "cpu", "threads": 1, "seconds": 0.05, "n": 128, "dtype": dtype})
        assert answer["status"] == "ok" and answer["peak_gflops"] > 0
