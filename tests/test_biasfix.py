"""Transfer sets without some classes (omit / keep) and Hinton's output-bias fix."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from cli_helpers import tiny_overrides
from safetensors.torch import load_file

from kdedge.errors import InputError, RuntimeFailure
from kdedge.models.builders import build_model, output_bias
from kdedge.recipe import load_recipe
from kdedge.train.biasfix import (
    check_transfer_set,
    fit_shift,
    missing_classes,
    missing_rate,
    raise_bias,
    split_holdout,
)
from kdedge.train.pipeline import prepare_data, student_train_split

TINY = tiny_overrides("student.model_kwargs.hidden=[32]")


def recipe_with(**overrides):
    return load_recipe("hinton_mnist", overrides)


def test_omit_and_keep_filter_only_the_students_split(data_root: Path) -> None:
    recipe = recipe_with(**{"data.train_limit": 2000, "data.omit_classes": [3]})
    bundle = prepare_data(recipe, str(data_root))
    transfer = student_train_split(recipe, bundle)
    assert 3 in bundle.train.labels and 3 not in transfer.labels  # the teacher still sees threes
    assert len(transfer) == int((bundle.train.labels != 3).sum())
    only = student_train_split(recipe_with(**{"data.train_limit": 2000, "data.keep_classes": [7, 8]}), bundle)
    assert set(only.labels.tolist()) == {7, 8} and len(only) == int(
        torch.isin(bundle.train.labels, torch.tensor([7, 8])).sum()
    )
    assert len(bundle.test) == 10_000 and set(bundle.test.labels.tolist()) == set(range(10))  # full test set


def test_missing_classes_and_bad_transfer_sets() -> None:
    assert missing_classes(recipe_with(**{"data.omit_classes": [3]}), 10) == [3]
    assert missing_classes(recipe_with(**{"data.keep_classes": [7, 8]}), 10) == [0, 1, 2, 3, 4, 5, 6, 9]
    with pytest.raises(InputError, match="leave no class"):
        check_transfer_set(recipe_with(**{"data.omit_classes": list(range(10))}), 10)
    with pytest.raises(InputError, match="leave no class"):
        check_transfer_set(recipe_with(**{"data.keep_classes": [7], "data.omit_classes": [7]}), 10)
    with pytest.raises(InputError, match="bias_fix: 3.5 needs a transfer set with classes left out"):
        check_transfer_set(recipe_with(**{"distillation.bias_fix": 3.5}), 10)
    check_transfer_set(recipe_with(**{"distillation.bias_fix": "auto", "data.omit_classes": [3]}), 10)


def test_auto_fit_recovers_a_known_bias_shift_on_a_tiny_model() -> None:
    """Student = teacher with the output bias of classes 3 and 5 lowered by 2.75: the fit must find 2.75,
    and raising the bias by it must give back the teacher's outputs."""
    torch.manual_seed(0)
    teacher = build_model("mlp", 10, 1, 8, {"hidden": [16]}).eval()
    with torch.no_grad():  # a random net may never pick 3 or 5: make the teacher predict them sometimes
        output_bias(teacher)[[3, 5]] += 0.3
    student = build_model("mlp", 10, 1, 8, {"hidden": [16]}).eval()
    student.load_state_dict(teacher.state_dict())
    with torch.no_grad():
        output_bias(student)[[3, 5]] -= 2.75
    images = torch.randn(512, 1, 8, 8)
    with torch.no_grad():
        student_logits, teacher_logits = student(images), teacher(images)
    shift = fit_shift(student_logits, teacher_logits, [3, 5])
    target = missing_rate(teacher_logits, [3, 5])
    assert 0 < target < 1 and missing_rate(student_logits, [3, 5], shift) == target
    assert shift == pytest.approx(2.75, abs=0.25)  # the middle of the matching interval, which holds 2.75
    raise_bias(student, [3, 5], shift)
    with torch.no_grad():
        agree = (student(images).argmax(1) == teacher_logits.argmax(1)).float().mean()
    assert agree > 0.98
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 3.0], [1.0, 0.0, 0.0]])
    assert missing_rate(logits, [0]) == pytest.approx(0.5)
    assert missing_rate(logits, [0], shift=1.5) == pytest.approx(0.75)  # row 2 flips, row 3 (3 > 1.5) not
    with pytest.raises(RuntimeFailure, match="nothing to match"):
        fit_shift(logits, torch.tensor([[0.0, 1.0, 0.0]]), [0])  # the teacher never predicts class 0


def test_holdout_only_for_auto_and_disjoint(data_root: Path) -> None:
    recipe = recipe_with(**{"data.train_limit": 1000, "data.omit_classes": [3], "distillation.bias_fix": "auto"})
    bundle = prepare_data(recipe, str(data_root))
    rest, held = split_holdout(bundle.train, recipe)
    assert len(held) == len(bundle.train) // 10 and len(rest) + len(held) == len(bundle.train)
    assert 3 in held.labels  # held out before the threes are dropped: the teacher predicts them there
    transfer = student_train_split(recipe, replace(bundle, train=rest))
    assert 3 not in transfer.labels and len(transfer) == int((rest.labels != 3).sum())
    assert not set(held.ids or []) & set(transfer.ids or [])  # MNIST splits carry no ids: check by pixels
    pixels = {bytes(img.numpy()) for img in held.images}
    assert not any(bytes(img.numpy()) in pixels for img in transfer.images[:2000])
    assert split_holdout(bundle.train, recipe_with(**{"distillation.bias_fix": 2.0}))[1] is None


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["--set", "data.omit_classes=[0,1,2,3,4,5,6,7,8,9]"], "leave no class"),
        (["--set", "distillation.bias_fix=3.5"], "needs a transfer set with classes left out"),
        (["--set", "data.keep_classes=[12]"], "class 12 does not exist"),
    ],
)
def test_cli_bad_transfer_sets_exit_2_before_writing(kdedge, data_root: Path, tmp_path: Path, overrides, message):
    result = kdedge("distill", "hinton_mnist", *TINY, *overrides, "--out", tmp_path / "run", "--data-root", data_root)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_distill_with_bias_fix_saves_both_students_and_reports_omitted_errors(kdedge, data_root, tmp_path):
    out = tmp_path / "run"
    result = kdedge(
        "distill",
        "hinton_mnist",
        *TINY,
        "--set",
        "data.omit_classes=[3]",
        "--set",
        "distillation.bias_fix=auto",
        "--out",
        out,
        "--data-root",
        data_root,
    )
    assert result.returncode == 0, result.stderr
    assert "student_bias_fixed" in result.stdout
    summary = json.loads((out / "summary.json").read_text())
    before, after = summary["student"], summary["student_bias_fixed"]
    assert before["omitted_classes"] == after["omitted_classes"] == [3]
    assert before["omitted_class_count"] == after["omitted_class_count"] > 0
    assert after["omitted_class_errors"] == after["per_class_errors"][3]
    assert after["bias_fix"] == "auto" and after["holdout_images"] > 0
    unfixed, fixed = load_file(out / "student_unfixed.safetensors"), load_file(out / "student.safetensors")
    bias = next(k for k in fixed if k.endswith("bias") and fixed[k].shape == (10,))  # the output layer's
    delta = fixed[bias] - unfixed[bias]
    assert delta[3] == pytest.approx(after["bias_shift"], abs=1e-4)
    assert torch.count_nonzero(delta[[0, 1, 2, 4, 5, 6, 7, 8, 9]]) == 0
