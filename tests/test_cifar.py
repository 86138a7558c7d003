"""CIFAR-10: the subset loader, device augmentation, the CIFAR models and recipes, bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from kdedge.data.load import load_data
from kdedge.files.atomic import save_state
from kdedge.files.rundir import RunDir
from kdedge.models.builders import build_model
from kdedge.recipe import load_recipe
from kdedge.train.augment import augment

DATA = os.environ.get("KDEDGE_DATA", "")
needs_data = pytest.mark.skipif(not (Path(DATA) / "cifar-10-batches-py").is_dir(), reason="KDEDGE_DATA has no CIFAR-10")
CIFAR_RECIPES = (
    "cifar10_resnet18",
    "cifar10_resnet50",
    "cifar10_self_r18",
    "cifar10_self_r50",
    "cifar10_reverse_r50_from_r18",
    "cifar10_alexnet_smallcnn",
)
CIFAR_MODELS = ("small_cnn", "alexnet_cifar", "cifar_resnet18", "cifar_resnet50")


def kdedge(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "kdedge", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


# -- data ------------------------------------------------------------------------------------------------
@needs_data
def test_subset_loader_reads_the_real_subset():
    bundle = load_data("cifar10", DATA)
    assert bundle.train.images.shape == (4000, 3, 32, 32) and bundle.train.images.dtype == torch.uint8
    assert bundle.test.images.shape == (1000, 3, 32, 32)
    # class counts of the subset as documented in the data folder's README
    assert torch.bincount(bundle.train.labels).tolist() == [396, 366, 420, 384, 422, 393, 414, 385, 407, 413]
    assert torch.bincount(bundle.test.labels).tolist() == [103, 89, 100, 103, 90, 86, 112, 102, 106, 109]
    mean = (bundle.train.images.float() / 255).mean(dim=(0, 2, 3))
    assert torch.allclose(mean, torch.tensor([0.4916, 0.4818, 0.4447]), atol=2e-4)  # README's subset mean
    assert bundle.class_names[0] == "airplane" and bundle.num_classes == 10


@needs_data
def test_missing_batch_is_one_line_exit_2(tmp_path):
    root = tmp_path / "data" / "cifar-10-batches-py"
    root.mkdir(parents=True)
    for source in (Path(DATA) / "cifar-10-batches-py").iterdir():
        if source.name != "data_batch_3":
            (root / source.name).symlink_to(source)
    result = kdedge(
        "train", "cifar10_resnet18", "--data-root", str(tmp_path / "data"), "--out", "run", "-q", cwd=tmp_path
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "data_batch_3" in lines[0] and "Traceback" not in result.stderr


def _as_crop(source: torch.Tensor, output: torch.Tensor, pad: int) -> tuple[int, int, bool] | None:
    """(dy, dx, flipped) such that output is that window of the zero-padded source, else None."""
    padded = torch.nn.functional.pad(source, (pad,) * 4)
    size = source.shape[-1]
    for dy in range(2 * pad + 1):
        for dx in range(2 * pad + 1):
            window = padded[:, dy : dy + size, dx : dx + size]
            for flipped in (False, True):
                if torch.equal(window.flip(-1) if flipped else window, output):
                    return dy, dx, flipped
    return None


def test_crop_flip_is_a_padded_crop_plus_flip_and_seeded():
    images = torch.randint(1, 256, (64, 3, 32, 32), dtype=torch.uint8)  # no zeros: padding is recognisable
    out = augment(images, "crop_flip", torch.Generator().manual_seed(3))
    assert out.shape == images.shape and out.dtype == torch.uint8
    again = augment(images, "crop_flip", torch.Generator().manual_seed(3))
    other = augment(images, "crop_flip", torch.Generator().manual_seed(4))
    assert torch.equal(out, again) and not torch.equal(out, other)
    found = [_as_crop(images[i], out[i], 4) for i in range(16)]
    assert all(f is not None for f in found), "every output must be a pad-4 crop, maybe mirrored"
    shifts = {(dy, dx) for dy, dx, _ in found}
    flips = sum(f for _, _, f in found)
    assert len(shifts) > 4 and 0 < flips < 16  # random per image, not one shift / flip for the whole batch
    assert torch.equal(augment(images, "none", torch.Generator()), images)


# -- models ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", CIFAR_MODELS)
def test_model_forward_and_onnx_export(name, tmp_path):
    import onnxruntime as ort

    torch.manual_seed(0)
    model = build_model(name, num_classes=10, in_channels=3, image_size=32).eval()
    traced_input, fresh_input = torch.randn(2, 3, 32, 32), torch.randn(3, 3, 32, 32)
    with torch.inference_mode():
        assert model(traced_input).shape == (2, 10)
        expected = model(fresh_input).numpy()
    path = tmp_path / f"{name}.onnx"
    torch.onnx.export(
        model,
        (traced_input,),
        str(path),
        input_names=["images"],
        output_names=["logits"],
        dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}},
        dynamo=False,
    )  # the TorchScript exporter: seconds, where dynamo takes far longer on CPU
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(["logits"], {"images": fresh_input.numpy()})[0]  # batch 3: never traced
    assert got.shape == (3, 10)
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-4)


def test_models_have_the_cifar_shapes():
    resnet = build_model("cifar_resnet18", 10, 3, 32)
    assert resnet.conv1.kernel_size == (3, 3) and resnet.conv1.stride == (1, 1)  # 3x3 stem, stride 1
    assert isinstance(resnet.maxpool, nn.Identity)  # no max-pool: 32x32 keeps its resolution
    small = build_model("small_cnn", 10, 3, 32)
    assert sum(isinstance(m, nn.Conv2d) for m in small.modules()) == 2
    assert sum(isinstance(m, nn.Linear) for m in small.modules()) == 3
    alexnet = build_model("alexnet_cifar", 10, 3, 32)
    assert sum(isinstance(m, nn.Conv2d) for m in alexnet.modules()) == 5
    sizes = {n: sum(p.numel() for p in build_model(n, 10, 3, 32).parameters()) for n in CIFAR_MODELS}
    assert sizes["small_cnn"] < sizes["alexnet_cifar"] and sizes["cifar_resnet18"] < sizes["cifar_resnet50"]


# -- recipes ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", CIFAR_RECIPES)
def test_cifar_recipes_load_with_the_agreed_settings(name):
    recipe = load_recipe(name)
    assert recipe.data.name == "cifar10" and 0 < recipe.data.val_size < 4000  # fits the subset too
    teacher = recipe.teacher
    assert teacher.optimizer == "sgd" and teacher.momentum == 0.9 and teacher.augment == "crop_flip"
    if name.startswith("cifar10_resnet") or "_r" in name:
        assert teacher.nesterov and teacher.weight_decay == 5e-4 and teacher.schedule == "cosine"
    if recipe.student is not None and name != "cifar10_alexnet_smallcnn":
        distill = recipe.distillation
        assert (distill.loss, distill.soft_weight, distill.temperature) == ("kl", 0.5, 11)


def test_self_and_reverse_kd_are_recipes_not_code_paths():
    self_r18, self_r50 = load_recipe("cifar10_self_r18"), load_recipe("cifar10_self_r50")
    reverse = load_recipe("cifar10_reverse_r50_from_r18")
    assert self_r18.teacher.model == self_r18.student.model == "cifar_resnet18"
    assert self_r50.teacher.model == self_r50.student.model == "cifar_resnet50"
    assert (reverse.teacher.model, reverse.student.model) == ("cifar_resnet18", "cifar_resnet50")
    assert reverse.student.model_dump(exclude={"model"}) == reverse.teacher.model_dump(exclude={"model"})


def test_alpha_study_recipe():
    recipe = load_recipe("cifar10_alexnet_smallcnn")
    assert (recipe.teacher.model, recipe.teacher.epochs) == ("alexnet_cifar", 30)
    assert recipe.student.model == "small_cnn"
    assert recipe.student.optimizer == "sgd"
    assert recipe.sweep is not None and sorted(recipe.sweep.grid["distillation.alpha"]) == [0.0, 0.5, 1.0]


# -- teacher checkpoints that do not fit -----------------------------------------------------------------
@needs_data
@pytest.mark.parametrize("mismatch", ["classes", "architecture"])
def test_teacher_checkpoint_mismatch_is_one_line_exit_2(mismatch, tmp_path):
    wrong = (
        build_model("small_cnn", 5, 3, 32) if mismatch == "classes" else build_model("mlp", 10, 3, 32, {"hidden": [16]})
    )
    save_state(tmp_path / "teacher.safetensors", wrong.state_dict())
    result = kdedge(
        "distill",
        "cifar10_self_r18",
        "--set",
        "teacher.model=small_cnn",
        "--set",
        "teacher.checkpoint=teacher.safetensors",
        "--set",
        "data.train_limit=64",
        "--out",
        "run",
        "-q",
        "--data-root",
        DATA,
        cwd=tmp_path,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "teacher" in lines[0] and "Traceback" not in result.stderr
    assert "do not fit the recipe's model" in lines[0]
    assert ("(5, 128)" in lines[0]) == (mismatch == "classes")  # the 5-class head is named with its shape
    assert not (tmp_path / "run" / "student.safetensors").exists()


# -- the alpha study on a few batches --------------------------------------------------------------------
@needs_data
def test_alpha_study_trains_the_teacher_once_and_reports_both_conventions(tmp_path):
    """The recipe's alpha sweep (`kdedge distill cifar10_alexnet_smallcnn`): one teacher, a student per alpha,
    and the study's table in both alpha conventions (kdedge.report.alpha_study)."""
    import json

    from kdedge.experiments.sweep import run_sweep
    from kdedge.report import alpha_study
    from kdedge.report.markdown import sweep_points

    # the mechanism, not AlexNet's accuracy, is under test: a narrow small_cnn teaches (AlexNet's forward and
    # export are tested above), on a few batches
    tiny = {
        "data.train_limit": 64,
        "data.test_limit": 32,
        "data.val_size": 32,
        "teacher.epochs": 1,
        "student.epochs": 2,
        "teacher.batch_size": 32,
        "student.batch_size": 32,
        "device": "cpu",
        "teacher.model": "small_cnn",
        "teacher.model_kwargs": {"width": 8},
        "student.model_kwargs": {"width": 4},
    }
    recipe = load_recipe("cifar10_alexnet_smallcnn", tiny)
    run_sweep(recipe, dict(recipe.sweep.grid), tmp_path, DATA)
    grid = json.loads((tmp_path / "sweep.json").read_text())["grid"]
    rows = alpha_study.study_rows(*sweep_points(tmp_path, grid))
    assert [(r["kdedge_alpha"], r["study_alpha"]) for r in rows] == [(1.0, 0.0), (0.0, 1.0), (0.5, 0.5)]
    teacher_epochs = [r for r in RunDir(tmp_path / "teacher").read_metrics() if r["stage"] == "teacher"]
    assert len(teacher_epochs) == 1  # the sweep trained the teacher once ...
    for row in rows:  # ... and each student's run loaded it instead of training one
        run = RunDir(row["run"])
        assert [r["stage"] for r in run.read_metrics()] == ["student", "student"]
        assert run.read_summary()["teacher"]["source"] == str(tmp_path / "teacher" / "teacher.safetensors")
        assert row["teacher_test_accuracy"] == rows[0]["teacher_test_accuracy"]
        assert all(0 <= row[k] <= 1 for k in ("train_accuracy", "val_accuracy", "test_accuracy"))
    table = alpha_study.markdown_table(rows)
    assert "teacher-term weight" in table and "hard-label weight" in table and table.count("\n| ") == 4
    alpha_study.loss_curves_png(rows, tmp_path / "curves.png", "alpha study")
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"
