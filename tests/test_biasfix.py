"""Transfer sets without some classes (omit / keep) and Hinton's output-bias fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from kdedge.biasfix import (
    check_transfer_set,
    fit_shift,
    missing_classes,
    missing_mass,
    raise_bias,
    split_holdout,
)
from kdedge.errors import InputError
from kdedge.models import build_model, output_bias
from kdedge.pipeline import prepare_data, student_train_split
from kdedge.recipe import load_recipe

TINY = [
    "--set",
    "teacher.epochs=1",
    "--set",
    "student.epochs=1",
    "--set",
    "data.train_limit=600",
    "--set",
    "data.test_limit=200",
    "--set",
    "teacher.model_kwargs.hidden=[64]",
    "--set",
    "student.model_kwargs.hidden=[32]",
]


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
    student = build_model("mlp", 10, 1, 8, {"hidden": [16]}).eval()
    student.load_state_dict(teacher.state_dict())
    with torch.no_grad():
        output_bias(student)[[3, 5]] -= 2.75
    images = torch.randn(512, 1, 8, 8)
    with torch.no_grad():
        shift = fit_shift(student(images), teacher(images), [3, 5])
    assert shift == pytest.approx(2.75, abs=1e-3)
    raise_bias(student, [3, 5], shift)
    with torch.no_grad():
        assert torch.allclose(student(images), teacher(images), atol=1e-3)
    logits = torch.zeros(4, 3)
    assert missing_mass(logits, [0]) == pytest.approx(1 / 3)
    assert missing_mass(logits, [0], shift=float(torch.log(torch.tensor(2.0)))) == pytest.approx(0.5)


def test_holdout_only_for_auto_and_disjoint(data_root: Path) -> None:
    recipe = recipe_with(
        **{"data.train_limit": 1000, "data.omit_classes": [3], "distillation.bias_fix": "auto"}
    )
    transfer = student_train_split(recipe, prepare_data(recipe, str(data_root)))
    train, held = split_holdout(transfer, recipe)
    assert len(held) == len(transfer) // 10 and len(train) + len(held) == len(transfer)
    assert split_holdout(transfer, recipe_with(**{"distillation.bias_fix": 2.0}))[1] is None


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["--set", "data.omit_classes=[0,1,2,3,4,5,6,7,8,9]"], "leave no class"),
        (["--set", "distillation.bias_fix=3.5"], "needs a transfer set with classes left out"),
        (["--set", "data.keep_classes=[12]"], "class 12 does not exist"),
    ],
)
def test_cli_bad_transfer_sets_exit_2_before_writing(
    kdedge, data_root: Path, tmp_path: Path, overrides, message
):
    result = kdedge(
        "distill", "hinton_mnist", *TINY, *overrides, "--out", tmp_path / "run", "--data-root", data_root
    )
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
