"""NCNN (pnnx) and MNN end to end on a small real MNIST run: exported at fp32 / fp16, checked against PyTorch at
the export's bounds, self-describing (sidecar metadata), predicted with, benched one row per file; a damaged
.param / .bin / .mnn is one line; a layer ncnn lacks is named; `kdedge formats` lists both rows."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from export_helpers import make_exported_run, require_extras
from PIL import Image

from kdedge.data.types import normalize
from kdedge.errors import InputError
from kdedge.files.rundir import RunDir
from kdedge.train.pipeline import prepare_data

pytestmark = pytest.mark.usefixtures("one_torch_thread")

NEEDED = {"pnnx": "ncnn-convert", "ncnn": "ncnn", "MNN": "mnn"}


def _require_extras() -> None:
    require_extras(NEEDED, "make edge does", "extras not installed ({missing}): pip install -e '.[ncnn-convert,mnn]'")


@pytest.fixture(scope="module")
def arm_run(data_root: Path, tmp_path_factory: pytest.TempPathFactory):
    """(run, rows): a briefly trained MNIST MLP exported to ncnn and MNN at fp32, fp16 and (refused) int8."""
    _require_extras()
    return make_exported_run(
        tmp_path_factory.mktemp("arm") / "run",
        data_root,
        "mlp",
        "fp32,fp16,int8",
        model_kwargs={"hidden": [32]},
        train_steps=150,
        test_limit=100,
        export_options={"formats": "ncnn,mnn"},
    )


def _rows(rows) -> dict[tuple[str, str], object]:
    return {(r.fmt, r.precision): r for r in rows}


def test_export_parity_and_metadata(arm_run):
    run, rows = arm_run
    by = _rows(rows)
    assert by[("ncnn", "int8")].status.startswith("skipped: ncnn writes fp32, fp16 only")
    assert by[("mnn", "int8")].status.startswith("skipped: mnn writes fp32, fp16 only")
    summary = json.loads((run / "summary.json").read_text())["data"]
    for key in [("ncnn", "fp32"), ("ncnn", "fp16"), ("mnn", "fp32"), ("mnn", "fp16")]:
        row = by[key]
        assert row.status == "ok", (key, row.status)
        path = Path(row.path)
        assert path.parent == run / "export" and path.exists()
        meta = json.loads(Path(str(path) + ".json").read_text())
        assert json.loads(meta["kdedge.mean"]) == summary["mean"]
        assert json.loads(meta["kdedge.class_names"]) == summary["class_names"]
        assert meta["kdedge.format"] == key[0] and meta["kdedge.precision"] == key[1]
        assert float(meta["kdedge.test_accuracy"]) == pytest.approx(row.test_accuracy, abs=1e-6)
        assert row.test_accuracy > 0.6 and row.test_count == 100 and row.test_agreement >= 0.97
    ncnn_folder = Path(by[("ncnn", "fp32")].path)
    assert ncnn_folder.name == "student.fp32.ncnn" and ncnn_folder.is_dir()
    assert sorted(p.name for p in ncnn_folder.iterdir()) == ["model.ncnn.bin", "model.ncnn.param"]
    # fp32 within the export's fp32 bound of PyTorch at batches 1 and 7 (ncnn: image by image, fp16 options off)
    assert by[("ncnn", "fp32")].rel_diff < 1e-5 and by[("mnn", "fp32")].rel_diff < 1e-5
    assert by[("ncnn", "fp16")].size_mb < 0.6 * by[("ncnn", "fp32")].size_mb
    assert by[("mnn", "fp16")].size_mb < 0.7 * by[("mnn", "fp32")].size_mb


def _images(run: Path, data_root: Path, folder: Path, count: int = 12) -> tuple[list[Path], list[int]]:
    bundle = prepare_data(RunDir(run).read_recipe(), str(data_root))
    model, _ = RunDir(run).load_model("student")
    images = bundle.test.images[:count]
    with torch.inference_mode():
        classes = model(normalize(images, bundle.mean, bundle.std)).argmax(1).tolist()
    files = []
    for index, image in enumerate(images.numpy()):
        files.append(folder / f"{index:02d}.png")
        Image.fromarray(image[0]).save(files[-1])
    return files, classes


def test_predict_ncnn_and_mnn(arm_run, data_root: Path, tmp_path: Path, kdedge):
    run, _ = arm_run
    files, classes = _images(run, data_root, tmp_path)
    assert len(set(classes)) > 3
    for name in ("student.fp32.ncnn", "student.fp16.ncnn", "student.fp32.mnn"):
        done = kdedge("predict", run / "export" / name, *files, "--json")
        assert done.returncode == 0, done.stderr
        assert [r["top"][0]["index"] for r in json.loads(done.stdout)] == classes, name


def test_bench_row_per_file(arm_run, data_root: Path):
    from kdedge.bench.run import BenchOptions, run_bench

    run, rows = arm_run
    options = BenchOptions(
        batch_sizes=(1,), threads=1, seconds=0.2, warmup_s=0.05, data_root=str(data_root), runtimes=("ncnn", "mnn")
    )
    measured = {(r["runtime"], r["precision"]): r for r in run_bench([run], options)["rows"]}
    exported = _rows(rows)
    for key in [("ncnn", "fp32"), ("ncnn", "fp16"), ("mnn", "fp32"), ("mnn", "fp16")]:
        row = measured[key]
        assert row["status"] == "ok", row["status"]
        assert row["latency_ms_p50"] > 0 and row["batch_size"] == 1
        assert row["accuracy"] == pytest.approx(exported[key].test_accuracy, abs=1e-9)


def _damaged(run: Path, folder: Path) -> dict[str, Path]:
    """Copies of the exported files, each broken in one way, with their sidecars."""
    source = run / "export" / "student.fp32.ncnn"
    cases: dict[str, Path] = {}
    for case, (member, cut) in {"param": ("model.ncnn.param", 0), "bin": ("model.ncnn.bin", 2)}.items():
        copy = folder / case / "student.fp32.ncnn"
        shutil.copytree(source, copy)
        data = (source / member).read_bytes()
        (copy / member).write_bytes(b"not an ncnn file\n" if cut == 0 else data[: len(data) // cut])
        shutil.copy(run / "export" / "student.fp32.ncnn.json", copy.parent / "student.fp32.ncnn.json")
        cases[case] = copy
    mnn = folder / "mnn" / "student.fp32.mnn"
    mnn.parent.mkdir()
    mnn.write_bytes((run / "export" / "student.fp32.mnn").read_bytes()[:100])
    shutil.copy(run / "export" / "student.fp32.mnn.json", mnn.parent / "student.fp32.mnn.json")
    cases["mnn"] = mnn
    return cases


def test_damaged_files_are_one_line(arm_run, tmp_path: Path, kdedge):
    run, _ = arm_run
    image = tmp_path / "digit.png"
    Image.new("L", (28, 28)).save(image)
    for case, path in _damaged(run, tmp_path).items():
        done = kdedge("predict", path, image)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2, (case, done.stderr)
        assert len(lines) == 1 and lines[0].startswith("error: ") and path.name in lines[0], (case, done.stderr)


def test_a_layer_ncnn_lacks_is_named(arm_run, tmp_path: Path):
    from kdedge.runtime.ncnn_runner import NcnnRunner

    run, _ = arm_run
    copy = tmp_path / "student.fp32.ncnn"
    shutil.copytree(run / "export" / "student.fp32.ncnn", copy)
    param = copy / "model.ncnn.param"
    param.write_text(param.read_text().replace("InnerProduct ", "torch.roll   ", 1))
    with pytest.raises(InputError, match="layers this ncnn cannot run: torch.roll"):
        NcnnRunner(copy)


def test_runners_take_any_batch(arm_run):
    from kdedge.runtime.mnn_runner import MnnRunner
    from kdedge.runtime.ncnn_runner import NcnnRunner

    run, _ = arm_run
    images = np.random.default_rng(0).standard_normal((9, 1, 28, 28)).astype(np.float32)
    for runner in (NcnnRunner(run / "export" / "student.fp32.ncnn"), MnnRunner(run / "export" / "student.fp32.mnn")):
        logits = runner.predict(images)
        assert logits.shape == (9, 10)
        np.testing.assert_allclose(logits[-2:], runner.predict(images[-2:]), rtol=1e-5, atol=1e-5)
        runner.bind(images)()


def test_formats_lists_ncnn_and_mnn(kdedge, monkeypatch):
    from kdedge.runtime import formats

    listed = {row["format"]: row for row in json.loads(kdedge("formats", "--json").stdout)}
    assert listed["ncnn"]["suffix"] == ".ncnn" and listed["ncnn"]["precisions"] == "fp32,fp16"
    assert listed["mnn"]["runtimes"] == "mnn"
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ncnn" else real(name, *a))
    row = next(r for r in formats.table_rows() if r["format"] == "ncnn")
    assert row["run here"] == "no: pip install 'kdedge-distill[ncnn]'"
    assert row["convert here"] == "no: pip install 'kdedge-distill[ncnn-convert]'"


def test_an_ncnn_folder_deploys_whole(arm_run, tmp_path: Path):
    """`export --target` copies the chosen file to export/deploy/: an .ncnn folder is copied as a folder (twice:
    the second replaces the first), with its sidecar."""
    from kdedge.bench.deploy import _write_edge_deployable
    from kdedge.runtime.ncnn_runner import NcnnRunner

    run, _ = arm_run
    source = run / "export" / "student.fp32.ncnn"
    for _ in range(2):
        out = _write_edge_deployable(source, tmp_path, "student.cpu-x86", {"kdedge.target": "cpu-x86"})
    assert out == tmp_path / "student.cpu-x86.ncnn" and sorted(p.name for p in tmp_path.iterdir()) == [
        "student.cpu-x86.ncnn",
        "student.cpu-x86.ncnn.json",
    ]
    assert json.loads((tmp_path / "student.cpu-x86.ncnn.json").read_text())["kdedge.target"] == "cpu-x86"
    images = np.zeros((2, 1, 28, 28), np.float32)
    np.testing.assert_array_equal(NcnnRunner(out).predict(images), NcnnRunner(source).predict(images))


@pytest.mark.parametrize("target_name", ["ncnn-fp32", "mnn-fp16"])
def test_search_targets_time_ncnn_and_mnn_files(target_name: str, tmp_path: Path):
    """`kdedge search --target ncnn-fp32` (and mnn-*): the search's cost stage writes the candidate as the
    target's file with kdedge's converter and times it with the format's runner, like any other row."""
    _require_extras()
    from kdedge.experiments.search.cost import CostSettings, file_size_mb, time_file, write_target_file
    from kdedge.experiments.search.target import Budget, parse_target, target_names
    from kdedge.models.builders import build_model

    assert {"ncnn-fp32", "ncnn-fp16", "mnn-fp32", "mnn-fp16"} <= set(target_names())
    target = parse_target(target_name)
    settings = CostSettings(target, Budget(latency_ms=5.0), seconds=0.2, warmup_s=0.05, in_channels=1)
    torch.manual_seed(0)
    model = build_model("mlp", 10, 1, 28, {"hidden": [16]}).eval()
    path = write_target_file(model, (1, 28, 28), np.zeros((0, 1, 28, 28), np.float32), settings, tmp_path)
    assert path.name == f"candidate.{target.precision}{target.fmt.suffix}" and file_size_mb(path) > 0
    timed = time_file(path, (1, 28, 28), settings)
    assert timed["status"] == "ok", timed
    assert timed["latency_ms_p50"] > 0
