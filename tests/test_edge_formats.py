"""The edge formats end to end on a small real MNIST run: ExecuTorch .pte and LiteRT .tflite exported
(fp32 / fp16 / int8), checked against PyTorch, self-describing (sidecar metadata), predicted with
(torch-free for .tflite), benched one row per file; Core ML converted and checked structurally (slow);
the format table, a missing extra and corrupt files are one clear line each."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from bench_helpers import rows_in_this_process
from cli_helpers import TORCH_FREE_PREDICT
from export_helpers import export_checked, make_exported_run, require_extras
from PIL import Image

from kdedge.data.types import normalize
from kdedge.errors import RuntimeFailure
from kdedge.files.rundir import RunDir
from kdedge.runtime.formats import FORMATS
from kdedge.train.pipeline import prepare_data

pytestmark = pytest.mark.usefixtures("one_torch_thread")

NEEDED = {"executorch": "executorch", "litert_torch": "litert-convert", "ai_edge_litert": "litert"}


def _require_extras() -> None:
    hint = "edge extras not installed ({missing}): make edge (pip install -e '.[edge]')"
    require_extras(NEEDED, "make test does", hint)


@pytest.fixture(scope="module")
def edge_run(data_root: Path, tmp_path_factory: pytest.TempPathFactory):
    """(run, rows): a briefly trained MNIST MLP exported to ExecuTorch and LiteRT at fp32, fp16, int8."""
    _require_extras()
    return make_exported_run(
        tmp_path_factory.mktemp("edge") / "run",
        data_root,
        "mlp",
        "fp32,fp16,int8",
        model_kwargs={"hidden": [32]},
        train_steps=150,
        test_limit=100,
        export_options={"formats": "executorch,litert", "calibration_images": 64},
    )


def _rows(rows) -> dict[tuple[str, str], object]:
    return {(r.fmt, r.precision): r for r in rows}


def test_table_points_at_real_code_and_cli_lists_it(kdedge):
    for fmt in FORMATS.values():
        for ref in (fmt.converter, fmt.runner, fmt.structure):
            if ref:
                module, attribute = ref.split(":")
                assert importlib.util.find_spec(module) is not None, ref
                source = Path(importlib.util.find_spec(module).origin).read_text()
                assert f"def {attribute}" in source or f"class {attribute}" in source, ref
    listed = json.loads(kdedge("formats", "--json").stdout)
    assert [row["format"] for row in listed] == list(FORMATS)
    assert all(row["run here"] == "runs on macOS only" for row in listed if row["format"] == "coreml")
    assert "executorch" in kdedge("export", "--help").stdout


def test_export_checks_every_file_and_writes_its_metadata(edge_run):
    run, rows = edge_run
    by = _rows(rows)
    assert by[("executorch", "fp16")].status.startswith("skipped: executorch writes fp32, int8")
    summary = json.loads((run / "summary.json").read_text())["data"]
    for key in [
        ("executorch", "fp32"),
        ("executorch", "int8"),
        ("litert", "fp32"),
        ("litert", "fp16"),
        ("litert", "int8"),
    ]:
        row = by[key]
        assert row.status == "ok", (key, row.status)
        path = Path(row.path)
        assert path.is_file() and path.parent == run / "export"
        meta = json.loads(Path(str(path) + ".json").read_text())
        assert json.loads(meta["kdedge.mean"]) == summary["mean"]
        assert json.loads(meta["kdedge.class_names"]) == summary["class_names"]
        assert float(meta["kdedge.test_accuracy"]) == pytest.approx(row.test_accuracy, abs=1e-6)
        assert meta["kdedge.format"] == key[0] and meta["kdedge.precision"] == key[1]
        assert row.test_accuracy > 0.6 and row.test_count == 100
        if key[0] == "executorch":  # the batch bound a call of the file takes, as planned into it
            assert meta["kdedge.max_batch_per_call"] == "1024"
    # fp32 parity with PyTorch (dynamic batch 1 and 7 for .pte, the file's batch 1 for .tflite)
    assert by[("executorch", "fp32")].rel_diff < 1e-5 and by[("litert", "fp32")].rel_diff < 1e-5
    assert by[("litert", "fp32")].batch == 1 and by[("executorch", "fp32")].batch is None
    assert Path(by[("litert", "int8")].path).name == "student.int8.b1.tflite"
    # reduced precisions: smaller files, top-1 agreement with PyTorch within the export bound
    fp32_mb = by[("litert", "fp32")].size_mb
    assert by[("litert", "int8")].size_mb < 0.4 * fp32_mb and by[("litert", "fp16")].size_mb < 0.6 * fp32_mb
    assert by[("executorch", "int8")].size_mb < 0.4 * by[("executorch", "fp32")].size_mb
    assert min(by[k].test_agreement for k in by if by[k].status == "ok") >= 0.97


def _images(run: Path, data_root: Path, folder: Path, count: int = 12) -> tuple[list[Path], list[int]]:
    """The run's first test images as PNG files and PyTorch's classes for them."""
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


def test_predict_tflite_torch_free_and_pte(edge_run, data_root: Path, tmp_path: Path, kdedge):
    run, _ = edge_run
    files, classes = _images(run, data_root, tmp_path)
    tflite = run / "export" / "student.fp32.b1.tflite"
    done = subprocess.run(
        [sys.executable, "-c", TORCH_FREE_PREDICT, str(tflite), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert [r["top"][0]["index"] for r in json.loads(done.stdout)] == classes
    assert len(set(classes)) > 3
    done = kdedge("predict", run / "export" / "student.fp32.pte", *files, "--json")
    assert done.returncode == 0, done.stderr
    assert [r["top"][0]["index"] for r in json.loads(done.stdout)] == classes


def test_pte_predicts_more_images_than_its_dynamic_batch_range(edge_run):
    """A set larger than the .pte's batch bound (planned into the file: 1024 here, 15 in CNN files written
    before the lowering kept the bound) is fed in chunks, with the same logits as a few images at a time."""
    from kdedge.runtime.edge_runners import ExecuTorchRunner

    run, _ = edge_run
    runner = ExecuTorchRunner(run / "export" / "student.fp32.pte")
    count = 3 * runner.max_batch + 5
    images = np.random.default_rng(0).standard_normal((count, 1, 28, 28)).astype(np.float32)
    logits = runner.predict(images)
    assert logits.shape == (count, 10)
    np.testing.assert_allclose(logits[-5:], runner.predict(images[-5:]), rtol=1e-5, atol=1e-5)
    runner.bind(images)()  # the bench's timed call takes any batch too


def test_bench_row_per_file_with_accuracy(edge_run, data_root: Path, monkeypatch):
    """One row per file, each scored on the run's test images. The rows are measured by the bench worker's code
    in this process, not in a child each (an ExecuTorch child spends ~6 s importing its runtime): what a row
    holds is tested here, a row's child process in tests/test_bench_timing.py and tests/test_ncnn_mnn.py."""
    from kdedge.bench.run import BenchOptions, run_bench

    run, rows = edge_run
    rows_in_this_process(monkeypatch)
    options = BenchOptions(
        batch_sizes=(1,),
        threads=1,
        seconds=0.05,
        warmup_s=0.01,
        data_root=str(data_root),
        runtimes=("executorch", "litert", "onnxruntime-trt"),
    )
    result = run_bench([run], options)
    measured = {(r["runtime"], r["precision"]): r for r in result["rows"]}
    exported = _rows(rows)
    for fmt, precision in [
        ("executorch", "fp32"),
        ("executorch", "int8"),
        ("litert", "fp32"),
        ("litert", "int8"),
    ]:
        row = measured[(fmt, precision)]
        assert row["status"] == "ok", row["status"]
        assert row["latency_ms_p50"] > 0 and row["batch_size"] == 1
        # bench scores the run's own test images: the same accuracy the export measured on the file
        assert row["accuracy"] == pytest.approx(exported[(fmt, precision)].test_accuracy, abs=1e-9)
    # no ONNX file here, so no TensorRT row; with one it would be skipped on a CPU-only machine
    assert all(r["status"] == "ok" for r in result["rows"])


# Runs `kdedge ARGS` for each ARGS of the JSON list argv[1] through kdedge.cli.main in this one process, each
# call's file descriptor 2 (where ExecuTorch's C++ logs go) caught in a file: [[exit code, stderr], ...].
EACH_WITH_FD2 = """
import json, os, sys, tempfile
from kdedge.cli import main
answers = []
for args in json.loads(sys.argv[1]):
    with tempfile.TemporaryFile(mode="w+") as sink:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            main(args)
        except SystemExit as exit:
            code = exit.code
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
        sink.seek(0)
        answers.append([code, sink.read()])
print(json.dumps(answers))
"""


def _corrupt_copies(run: Path, name: str, folder: Path) -> tuple[Path, Path]:
    """(the file cut to 6 bytes, the file's header followed by zeros), each beside a copy of its sidecar."""
    truncated, garbage = folder / name, folder / "garbage" / name
    garbage.parent.mkdir(exist_ok=True)
    truncated.write_bytes((run / "export" / name).read_bytes()[:6])
    garbage.write_bytes((run / "export" / name).read_bytes()[:8] + b"\0" * 64)
    for copy in (truncated, garbage):
        shutil.copy(run / "export" / f"{name}.json", copy.parent / f"{name}.json")
    return truncated, garbage


def test_corrupt_edge_files_are_one_line(edge_run, tmp_path: Path, kdedge):
    """.pte files in a real process: ExecuTorch's C++ logs go to file descriptor 2, which kdedge silences
    around a load; in this process they would reach pytest's capture through Python's sys.stderr instead.
    One process runs the three commands (EACH_WITH_FD2), each with its own descriptor 2."""
    run, _ = edge_run
    image = tmp_path / "digit.png"
    Image.new("L", (28, 28)).save(image)
    answers = []
    for name in ("student.fp32.pte", "student.fp32.b1.tflite"):
        truncated, garbage = _corrupt_copies(run, name, tmp_path)
        commands = [["predict", truncated, image], ["bench", truncated], ["predict", garbage, image]]
        if name.endswith(".pte"):
            done = subprocess.run(
                [sys.executable, "-c", EACH_WITH_FD2, json.dumps([[*map(str, c)] for c in commands])],
                capture_output=True,
                text=True,
                timeout=300,
                env=os.environ | {"COLUMNS": "200", "OMP_NUM_THREADS": "1"},
            )
            assert done.returncode == 0, done.stderr
            answers += [(name, code, err) for code, err in json.loads(done.stdout)]
        else:
            for command in commands:
                result = kdedge(*command)
                answers.append((name, result.returncode, result.stderr))
    assert len(answers) == 6
    for name, code, err in answers:
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and name in lines[0], (name, err)


def test_missing_extra_is_one_line_before_any_work(edge_run, tmp_path: Path, kdedge, monkeypatch):
    """litert-torch as if not installed (importlib finds no spec for it): one line with the install
    command, and nothing written, not even the ONNX file asked for with it."""
    run, _ = edge_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("export"))
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name.startswith("litert_torch") else find_spec(name, *a)
    )
    done = kdedge("export", copy, "--format", "onnx,litert")
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install 'kdedge-distill[litert-convert]'" in lines[0], done.stderr
    assert not (copy / "export").exists()  # not even the ONNX file was started


def test_a_file_that_misses_its_bound_is_never_written(edge_run, data_root: Path):
    run, _ = edge_run
    before = sorted(p.name for p in (run / "export").iterdir())
    target = run / "export" / "student.fp32.b4.tflite"
    with pytest.raises(RuntimeFailure, match="exported but failed its check"):
        export_checked(run, "student", "fp32", data_root=str(data_root), formats="litert", batches="4", fp32_rtol=1e-12)
    assert not target.exists() and sorted(p.name for p in (run / "export").iterdir()) == before


@pytest.mark.slow
def test_coreml_converts_and_is_checked_structurally(edge_run, data_root: Path):
    if importlib.util.find_spec("coremltools") is None:
        pytest.skip("coremltools not installed: pip install 'kdedge-distill[coreml]'")
    from kdedge.bench.run import BenchOptions, run_bench
    from kdedge.runtime.edge_meta import read_edge_metadata

    run, _ = edge_run
    rows = export_checked(run, "student", "fp32", data_root=str(data_root), formats="coreml")
    assert rows[0].status == "ok" and "structural" in rows[0].extra["check"]
    package = run / "export" / "student.fp32.mlpackage"
    meta = read_edge_metadata(package)  # inside the package, no sidecar
    assert meta["kdedge.format"] == "coreml" and not Path(str(package) + ".json").exists()
    assert json.loads(meta["kdedge.class_names"])[:3] == ["0", "1", "2"]
    result = run_bench([package], BenchOptions(batch_sizes=(1,), threads=1, seconds=0.1, runtimes=("coreml",)))
    assert [r["status"] for r in result["rows"]] == ["skipped: runs on macOS only"]
    assert np.isfinite(result["rows"][0]["size_mb"])
