"""RetinaMNIST: the loader on the real shared file, its md5 gate, amp: auto, the Swin size check, the retina
recipes, and the bad inputs (missing / truncated / other npz, a size Swin-T's windows do not
tile, a teacher run of another data set): one line, exit 2, nothing written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import run_kdedge

from kdedge.data import retinamnist
from kdedge.data.load import load_data
from kdedge.errors import InputError
from kdedge.models.builders import check_input_size
from kdedge.recipe import load_recipe
from kdedge.train import devices

RETINA_RECIPES = ("retina_convnext_teacher", "retina_swin", "retina_convnext_self", "retina_mobile")
# seconds, not minutes: 60 train / 40 test images at 32 px, one epoch, a small batch
TEACHER_EPOCH = (
    "--set",
    "data.train_limit=60",
    "--set",
    "data.image_size=32",
    "--set",
    "teacher.epochs=1",
    "--set",
    "teacher.batch_size=30",
    "--set",
    "teacher.step_epochs=1",
)
STUDENT_EPOCH = (
    *TEACHER_EPOCH,
    "--set",
    "student.epochs=1",
    "--set",
    "student.batch_size=30",
    "--set",
    "student.step_epochs=1",
)
TEST_40 = ("--set", "data.test_limit=40")
TEACHER_BATCHES = (*TEACHER_EPOCH, *TEST_40)
FEW_BATCHES = (*STUDENT_EPOCH, *TEST_40)


@pytest.fixture(scope="module")
def retina_root(data_root: Path) -> Path:
    if not (data_root / "medmnist" / retinamnist.FILE).is_file():
        pytest.skip(f"{data_root}/medmnist/{retinamnist.FILE} is not there")
    return data_root


# -- the loader on the real file --------------------------------------------------------------------
def test_loader_reads_the_official_split_as_is(retina_root: Path) -> None:
    bundle = load_data("retinamnist", str(retina_root))
    sizes = {name: len(getattr(bundle, name)) for name in ("train", "val", "test")}
    assert sizes == {"train": 1080, "val": 120, "test": 400}
    assert bundle.train.images.shape == (1080, 3, 28, 28) and bundle.train.images.dtype == torch.uint8
    counts = {
        name: torch.bincount(getattr(bundle, name).labels, minlength=5).tolist() for name in ("train", "val", "test")
    }
    assert counts == {"train": [486, 128, 206, 194, 66], "val": [54, 12, 28, 20, 6], "test": [174, 46, 92, 68, 20]}
    assert bundle.test.ids[0] == "test/0000" and bundle.num_classes == 5
    with np.load(retina_root / "medmnist" / retinamnist.FILE) as npz:  # channels moved, pixels untouched
        assert np.array_equal(bundle.test.images[7].permute(1, 2, 0).numpy(), npz["test_images"][7])


def test_upsampling_applies_to_every_split(retina_root: Path) -> None:
    bundle = load_data("retinamnist", str(retina_root), image_size=32)
    assert {s.images.shape[-1] for s in (bundle.train, bundle.val, bundle.test)} == {32}


def test_file_directly_in_the_root_is_found(retina_root: Path, tmp_path: Path) -> None:
    shutil.copy(retina_root / "medmnist" / retinamnist.FILE, tmp_path / retinamnist.FILE)
    assert retinamnist.find_file(tmp_path) == tmp_path / retinamnist.FILE
    assert retinamnist.file_md5(tmp_path / retinamnist.FILE) == retinamnist.MD5


def test_missing_file_names_both_places_and_the_source(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="medmnist/retinamnist.npz.*MedMNIST.*CC BY 4.0"):
        load_data("retinamnist", str(tmp_path))


@pytest.mark.parametrize("damage", ["truncated", "other"])
def test_a_file_that_is_not_the_official_one_is_refused(retina_root: Path, tmp_path: Path, damage: str) -> None:
    raw = (retina_root / "medmnist" / retinamnist.FILE).read_bytes()
    (tmp_path / "medmnist").mkdir()
    bad = raw[: len(raw) // 2] if damage == "truncated" else raw[:-1] + bytes([raw[-1] ^ 1])
    (tmp_path / "medmnist" / retinamnist.FILE).write_bytes(bad)
    with pytest.raises(InputError, match=f"is not the official RetinaMNIST md5 {retinamnist.MD5}"):
        load_data("retinamnist", str(tmp_path))


# -- amp: auto ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("native", "asked", "used"),
    [
        (True, "auto", "bf16"),
        (False, "auto", "off"),
        (True, "bf16", "bf16"),
        (False, "bf16", "off"),
        (True, "fp16", "off"),
        (True, "off", "off"),
    ],
)
def test_amp_on_cpu_follows_native_bf16(monkeypatch: pytest.MonkeyPatch, native: bool, asked: str, used: str) -> None:
    monkeypatch.setattr(devices, "cpu_native_bf16", lambda: native)
    assert devices.resolve_amp(asked, torch.device("cpu"))[0] == used
    said = "fp32" if used == "off" else "bf16 autocast"
    assert devices.describe_amp(asked, torch.device("cpu")).startswith(f"precision: {said}")


@pytest.mark.parametrize(("bf16_gpu", "used"), [(True, "bf16"), (False, "fp16")])
def test_amp_auto_on_cuda_takes_what_the_gpu_has(monkeypatch: pytest.MonkeyPatch, bf16_gpu: bool, used: str) -> None:
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16_gpu)
    assert devices.resolve_amp("auto", torch.device("cuda"))[0] == used
    assert devices.resolve_amp("fp16", torch.device("cuda"))[0] == "fp16"


def test_cpu_probe_matches_the_cpu_flags() -> None:
    flags = Path("/proc/cpuinfo").read_text().split() if Path("/proc/cpuinfo").is_file() else None
    if flags is None:
        pytest.skip("no /proc/cpuinfo")
    assert devices.cpu_native_bf16() == ("amx_tile" in flags or "avx512_bf16" in flags)


def test_no_packaged_recipe_forces_bf16_any_more() -> None:
    from kdedge.recipe import packaged_recipes

    assert all(load_recipe(name).amp in ("auto", "off") for name in packaged_recipes())


# -- recipes --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", RETINA_RECIPES)
def test_retina_recipes_follow_the_mission(name: str) -> None:
    recipe = load_recipe(name)
    assert recipe.data.name == "retinamnist" and recipe.teacher.model == "convnext_tiny"
    for cfg in (recipe.teacher, recipe.student):
        if cfg is None:
            continue
        check_input_size(cfg.model, recipe.data.image_size, cfg.model_kwargs)
        assert cfg.pretrained is False
        if cfg.model.startswith("swin"):  # a transformer's schedule: Adam 1e-3 step left Swin-T at one grade
            assert (cfg.optimizer, cfg.lr, cfg.schedule, cfg.warmup_epochs) == ("adamw", 2.5e-4, "cosine", 5)
            assert (cfg.weight_decay, cfg.clip_grad_norm, cfg.augment, cfg.keep) == (0.05, 1.0, "none", "best_val")
            continue
        assert (cfg.optimizer, cfg.lr, cfg.schedule, cfg.step_gamma) == ("adam", 1e-3, "step", 0.5)
        assert cfg.step_epochs * 2 == cfg.epochs
    kd = recipe.distillation
    if name == "retina_mobile":  # the edge student ships the best loss measured on RetinaMNIST (docs/retinamnist.md)
        assert (kd.loss, kd.temperature, recipe.student.augment, recipe.student.keep) == ("dist", 4, "none", "best_val")
    elif recipe.student is not None:
        assert (kd.loss, kd.soft_weight, kd.temperature) == ("kl", 0.25, 11)


@pytest.mark.parametrize("name", RETINA_RECIPES)
def test_retina_recipes_ship_the_documented_schedule(name: str) -> None:
    """Run as shipped they are the documented experiment (30 epochs a stage, fp32); tests pass short epochs."""
    recipe = load_recipe(name)
    assert recipe.amp == "off"
    assert all(cfg.epochs == 30 for cfg in (recipe.teacher, recipe.student) if cfg is not None)


def test_the_mobile_student_fits_the_edge_budget() -> None:
    from kdedge.models.builders import build_model, count_params

    recipe = load_recipe("retina_mobile")
    assert count_params(build_model(recipe.student.model, 5, 3, recipe.data.image_size)) <= 5_000_000


@pytest.mark.parametrize(
    ("size", "window", "fits"),
    [(64, 4, True), (32, 4, True), (224, 7, True), (96, 6, True), (60, 4, False), (64, 7, False), (48, 4, False)],
)
def test_swin_sizes_its_windows_tile(size: int, window: int, fits: bool) -> None:
    if fits:
        check_input_size("swin_tiny_patch4_window7_224", size, {"window_size": window})
    else:
        with pytest.raises(InputError, match="does not fit"):
            check_input_size("swin_tiny_patch4_window7_224", size, {"window_size": window})


# -- the CLI: a few batches, and bad input ---------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_teacher(retina_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A retina_convnext_teacher run of a few batches (also the check that the teacher recipe runs)."""
    out = tmp_path_factory.mktemp("retina") / "teacher"
    result = run_kdedge(
        "train", "retina_convnext_teacher", *TEACHER_BATCHES, "--out", out, "-q", env={"KDEDGE_DATA": str(retina_root)}
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return out


@pytest.mark.parametrize("name", [pytest.param("retina_swin", marks=pytest.mark.slow), "retina_mobile"])
def test_a_few_batches_of_each_student_recipe(retina_root: Path, tiny_teacher: Path, tmp_path: Path, name: str) -> None:
    result = run_kdedge(
        "distill",
        name,
        *FEW_BATCHES,
        "--set",
        f"teacher.checkpoint={tiny_teacher}",
        "--out",
        tmp_path / "run",
        "-q",
        env={"KDEDGE_DATA": str(retina_root)},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["data"]["dataset"] == "retinamnist" and summary["student"]["test_count"] == 40
    assert 0 <= summary["student"]["test_accuracy"] <= 1 and "test_qwk" in summary["student"]


def _refused(result, tmp_path: Path, pattern: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and pattern in lines[0], result.stderr
    assert not (tmp_path / "run").exists()


def test_a_size_swin_windows_do_not_tile_is_one_line(retina_root: Path, tmp_path: Path) -> None:
    result = run_kdedge(
        "distill",
        "retina_swin",
        *FEW_BATCHES,
        "--set",
        "data.image_size=60",
        "--out",
        tmp_path / "run",
        env={"KDEDGE_DATA": str(retina_root)},
    )
    _refused(result, tmp_path, "image size 60 px with window_size 4 does not fit")


def test_a_teacher_of_another_data_set_is_one_line(retina_root: Path, tiny_teacher: Path, tmp_path: Path) -> None:
    other = tmp_path / "other_teacher"
    shutil.copytree(tiny_teacher, other)
    summary = json.loads((other / "summary.json").read_text())
    summary["data"]["dataset"] = "aptos"  # same 5 classes, same size: only the data set differs
    (other / "summary.json").write_text(json.dumps(summary))
    result = run_kdedge(
        "distill",
        "retina_mobile",
        *FEW_BATCHES,
        "--set",
        f"teacher.checkpoint={other}",
        "--out",
        tmp_path / "run",
        env={"KDEDGE_DATA": str(retina_root)},
    )
    _refused(result, tmp_path, "was trained on aptos")


@pytest.mark.parametrize("damage", ["missing", "truncated"])
def test_cli_bad_npz_is_one_line(retina_root: Path, tmp_path: Path, damage: str) -> None:
    root = tmp_path / "data"
    (root / "medmnist").mkdir(parents=True)
    if damage == "truncated":
        raw = (retina_root / "medmnist" / retinamnist.FILE).read_bytes()
        (root / "medmnist" / retinamnist.FILE).write_bytes(raw[:1000])
    result = run_kdedge("train", "retina_convnext_teacher", "--out", tmp_path / "run", env={"KDEDGE_DATA": str(root)})
    _refused(result, tmp_path, "RetinaMNIST")


def test_the_start_line_says_the_precision(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devices, "cpu_native_bf16", lambda: False)
    assert devices.describe_device("cpu", "auto") == (
        "device: cpu (from the recipe); precision: fp32 (auto: fp32, this CPU has no native bf16 (emulated "
        "bf16 is slower than fp32))"
    )


def test_amp_off_as_yaml_reads_it() -> None:
    """YAML 1.1 turns a bare `off` into false: `--set amp=off` must still mean fp32."""
    assert load_recipe("retina_convnext_teacher", {"amp": False}).amp == "off"


@pytest.mark.slow
def test_summary_equals_an_independent_onnxruntime_evaluation(
    retina_root: Path, tiny_teacher: Path, tmp_path: Path
) -> None:
    """The RetinaMNIST accuracy check on a few-batch run scored on all 400 test images: summary.json's accuracy and QWK
    are what onnxruntime gives on the exported fp32 student (bench/retinamnist_check.py, its own npz
    reading, resize and scikit-learn QWK)."""
    import subprocess
    import sys

    from conftest import REPO

    env = {"KDEDGE_DATA": str(retina_root)}
    run = tmp_path / "run"
    teacher = ("--set", f"teacher.checkpoint={tiny_teacher}")
    result = run_kdedge("distill", "retina_mobile", *STUDENT_EPOCH, *teacher, "--out", run, "-q", env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((run / "summary.json").read_text())["student"]["test_count"] == 400
    result = run_kdedge("export", run, "--model", "student", "--precision", "fp32", "-q", env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    check = subprocess.run(
        [sys.executable, str(REPO / "bench" / "retinamnist_check.py"), str(run), "--data-root", str(retina_root)],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0 and check.stdout.startswith("ok"), check.stdout + check.stderr


def test_onnxruntime_domains_may_be_imported_but_not_used(tmp_path: Path) -> None:
    """onnxruntime's quantizer writes its built-in domains (org.pytorch.aten, com.microsoft.nchwc, ...) into
    every int8 file's opset imports without using them: those files load; a node in such a domain does not."""
    import onnx
    from onnx import helper

    from kdedge.runtime.check import check_onnx

    def model(node_domain: str) -> Path:
        node = helper.make_node("Relu", ["x"], ["y"], domain=node_domain)
        io = [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, [1]) for n in ("x", "y")]
        graph = helper.make_graph([node], "g", [io[0]], [io[1]])
        imports = [
            helper.make_opsetid("", 17),
            helper.make_opsetid("org.pytorch.aten", 1),
            helper.make_opsetid("com.microsoft.nchwc", 1),
        ]
        path = tmp_path / f"m{len(node_domain)}.onnx"
        onnx.save(helper.make_model(graph, opset_imports=imports), str(path))
        return path

    check_onnx(model(""))
    with pytest.raises(InputError, match="uses the custom-op domain 'org.pytorch.aten'"):
        check_onnx(model("org.pytorch.aten"))
