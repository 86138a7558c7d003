"""`kdedge bench` end to end on a small trained MNIST run and ONNX files made from it."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from bench_helpers import MNIST_META, export_onnx, quantize_int8, train_mnist_run
from cli_helpers import run_kdedge
from typer.testing import CliRunner

from kdedge.cli import app

ENV = {"KDEDGE_DATA": os.environ.get("KDEDGE_DATA", ""), "COLUMNS": "200"}
REQUIRED = {
    "model": str,
    "runtime": str,
    "precision": str,
    "device": str,
    "batch_size": int,
    "latency_ms_p50": float,
    "latency_ms_p90": float,
    "latency_ms_p99": float,
    "throughput_per_s": float,
    "accuracy": float,
    "params": int,
    "flops": int,
    "size_mb": float,
    "status": str,
}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A trained hinton_mnist run (tiny MLPs) with RUN/export/{teacher,student}.{fp32,int8}.onnx."""
    from kdedge.data.load import load_data
    from kdedge.data.types import normalize
    from kdedge.files.rundir import RunDir

    run = train_mnist_run(tmp_path_factory.mktemp("bench") / "mnist")
    calibration = normalize(load_data("mnist", None).train.images[:256], (0.1307,), (0.3081,)).numpy()
    for stage in ("teacher", "student"):
        model, _ = RunDir(run).load_model(stage)
        meta = MNIST_META | {"kdedge.stage": stage, "kdedge.model": "mlp", "kdedge.precision": "fp32"}
        fp32 = export_onnx(model, run / "export" / f"{stage}.fp32.onnx", (1, 28, 28), meta)
        quantize_int8(fp32, run / "export" / f"{stage}.int8.onnx", calibration)
    return run


def bench(*args: str):
    return CliRunner().invoke(app, ["bench", *args], env=ENV)


@pytest.fixture(scope="module")
def run_result(run_dir: Path, tmp_path_factory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("out")
    result = bench(
        str(run_dir),
        "--runtimes",
        "torch,onnxruntime",
        "--batch",
        "1,16",
        "--seconds",
        "0.2",
        "--threads",
        "1",
        "--json",
        str(out / "b.json"),
        "--csv",
        str(out / "b.csv"),
        "--md",
        str(out / "b.md"),
        "--plot",
        str(out / "b.png"),
    )
    assert result.exit_code == 0, result.output
    return json.loads((out / "b.json").read_text()), out


def test_json_rows_have_the_schema_and_every_row_ran(run_result):
    data, out = run_result
    rows = data["rows"]
    assert len(rows) == 2 * 3 * 2  # (teacher, student) x (torch fp32, ort fp32, ort int8) x batch (1, 16)
    for row in rows:
        for key, kind in REQUIRED.items():
            assert isinstance(row[key], kind), (key, row[key])
        assert row["status"] == "ok" and row["device"] == "cpu" and row["threads"] == 1
        assert 0 < row["latency_ms_p50"] <= row["latency_ms_p90"] <= row["latency_ms_p99"]
        assert row["throughput_per_s"] == pytest.approx(row["batch_size"] * 1000 / row["latency_ms_mean"])
    student = [r for r in rows if r["stage"] == "student"]
    assert all(r["speedup_vs_teacher"] > 0 and r["accuracy_delta_vs_teacher"] is not None for r in student)
    assert {(r["runtime"], r["precision"]) for r in rows} == {
        ("torch", "fp32"),
        ("onnxruntime", "fp32"),
        ("onnxruntime", "int8"),
    }
    with (out / "b.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == len(rows)
    assert "| mnist/teacher | onnxruntime | int8 | 16 |" in (out / "b.md").read_text()
    assert (out / "b.png").stat().st_size > 10_000


def test_flops_and_params_match_the_models(run_result):
    teacher = next(r for r in run_result[0]["rows"] if r["stage"] == "teacher")
    assert teacher["params"] == 784 * 64 + 64 + 64 * 64 + 64 + 64 * 10 + 10
    assert teacher["flops"] == 2 * (784 * 64 + 64 * 64 + 64 * 10)  # FlopCounterMode: 2 x multiply-adds


def test_accuracy_equals_the_runs_own_and_an_independent_onnxruntime_loop(run_dir, run_result):
    import onnxruntime as ort

    from kdedge.data.types import normalize
    from kdedge.recipe import load_recipe
    from kdedge.train.pipeline import prepare_data

    rows = run_result[0]["rows"]
    summary = json.loads((run_dir / "summary.json").read_text())
    recipe = load_recipe(str(run_dir / "recipe.yaml"))
    test = prepare_data(recipe, os.environ["KDEDGE_DATA"]).test
    images = normalize(test.images, (0.1307,), (0.3081,)).numpy()
    for stage in ("teacher", "student"):
        torch_row = next(r for r in rows if (r["stage"], r["runtime"]) == (stage, "torch"))
        assert torch_row["accuracy"] == pytest.approx(summary[stage]["test_accuracy"], abs=1e-12)
        assert torch_row["test_count"] == len(test) == 500
        for precision in ("fp32", "int8"):
            session = ort.InferenceSession(str(run_dir / "export" / f"{stage}.{precision}.onnx"))
            predicted = np.concatenate(
                [session.run(None, {"images": images[i : i + 100]})[0].argmax(1) for i in range(0, len(images), 100)]
            )
            expected = float((predicted == test.labels.numpy()).mean())
            row = next(
                r for r in rows if (r["stage"], r["runtime"], r["precision"]) == (stage, "onnxruntime", precision)
            )
            assert row["accuracy"] == pytest.approx(expected, abs=1e-12), (stage, precision)


def test_deployable_is_marked_and_export_target_writes_it(run_dir, run_result, tmp_path):
    import onnx

    rows = run_result[0]["rows"]
    scored = [r for r in rows if r["accuracy"] is not None]
    assert scored and all(0.9 <= r["agreement_fp32"] <= 1 for r in scored)  # a small MLP's int8 agrees
    assert all(r["agreement_fp32"] == 1 for r in scored if r["precision"] == "fp32" and r["runtime"] == "onnxruntime")
    for stage in ("teacher", "student"):
        chosen = {(r["runtime"], r["precision"]) for r in rows if r["stage"] == stage and r["deploy"]}
        assert len(chosen) == 1 and next(iter(chosen))[0] == "onnxruntime"
    args = ["export", str(run_dir), "--target", "cpu-x86", "--model", "student"]
    code = run_kdedge(*args).returncode
    out = run_dir / "export" / "deploy" / "student.cpu-x86.onnx"
    assert code == 0 and out.is_file()
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    chosen_row = next(r for r in rows if r["stage"] == "student" and r["deploy"] and r["batch_size"] == 1)
    assert meta["kdedge.target"] == "cpu-x86" and meta["kdedge.runtime"] == chosen_row["runtime"]
    assert meta["kdedge.runtime_precision"] == chosen_row["precision"] and meta["kdedge.dataset"] == "mnist"
    assert Path(chosen_row["file"]).name == meta["kdedge.deploy_source"]
    code, _, err = run_kdedge("export", str(tmp_path), "--target", "cpu-x86")
    assert code == 2 and "run `kdedge bench" in err  # not benched yet: says what to do


def test_bare_onnx_files_with_a_crashing_and_a_skipped_row(run_dir, tmp_path, monkeypatch):
    """Bare student fp32 + int8 files: one row's child aborts, fp16 is skipped on CPU, the table prints."""
    import onnx
    from rich.console import Console

    from kdedge.bench.results import bench_table
    from kdedge.bench.run import BenchOptions, measure_rows, plan_rows, score_rows
    from kdedge.bench.targets import discover, prepare_test_sets

    for precision in ("fp32", "int8"):
        (tmp_path / f"student.{precision}.onnx").write_bytes(
            (run_dir / "export" / f"student.{precision}.onnx").read_bytes()
        )
    fake_fp16 = onnx.load(str(tmp_path / "student.fp32.onnx"))  # planned as fp16, then skipped on the CPU
    next(p for p in fake_fp16.metadata_props if p.key == "kdedge.precision").value = "fp16"
    onnx.save(fake_fp16, str(tmp_path / "student.fp16.onnx"))
    models = discover([tmp_path / f"student.{p}.onnx" for p in ("fp32", "int8", "fp16")])
    assert len(models) == 1 and set(models[0].onnx) == {"fp32", "fp16", "int8"}
    assert models[0].flops == 2 * (784 * 16 + 16 * 10) and models[0].params == 784 * 16 + 16 + 16 * 10 + 10
    options = BenchOptions(batch_sizes=(4,), seconds=0.1, threads=1, runtimes=("onnxruntime",), limit=200)
    prepare_test_sets(models, os.environ["KDEDGE_DATA"], options.limit, tmp_path)
    rows = plan_rows(models, options, tmp_path)
    assert [r["precision"] for r in rows] == ["fp32", "fp16", "int8"]
    assert rows[1]["status"] == "skipped: fp16 ONNX is for the GPU (--device cuda)"
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))
    rows[0]["_entry"] = "bench_children:abort_row"
    measure_rows(rows, models, options)
    score_rows(rows, models)
    assert rows[0]["status"].startswith("error: child process killed by SIGABRT")
    assert rows[2]["status"] == "ok" and rows[2]["test_count"] == 200 and 0 <= rows[2]["accuracy"] <= 1
    console = Console(record=True, width=250)
    console.print(
        bench_table(
            {
                "rows": rows,
                "peak_gflops": None,
                "machine": {"cpu": "x", "cores": 2, "threads": 1, "device": "cpu"},
            }
        )
    )
    text = console.export_text()
    assert "error: child process killed by SIGABRT" in text and "skipped: fp16 ONNX" in text


def test_bare_onnx_through_the_cli_scores_accuracy_from_metadata(run_dir, tmp_path):
    file = run_dir / "export" / "student.fp32.onnx"
    result = bench(
        str(file),
        "--runtimes",
        "onnxruntime,openvino",
        "--batch",
        "8",
        "--seconds",
        "0.1",
        "--limit",
        "100",
        "--json",
        str(tmp_path / "b.json"),
        "--quiet",
    )
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "b.json").read_text())["rows"]
    ort_row = next(r for r in rows if r["runtime"] == "onnxruntime")
    assert ort_row["status"] == "ok" and ort_row["test_count"] == 100
    assert ort_row["model"] == f"{run_dir.name}/export/student"  # run, folder, stage: not "export/mlp"
    assert {r["runtime"] for r in rows} == {
        "onnxruntime",
        "openvino",
    }  # openvino rows ok or skipped, never absent
    assert all(r["status"] == "ok" or r["status"].startswith("skipped: ") for r in rows)


def test_bare_onnx_without_metadata_has_no_accuracy_but_is_timed(tmp_path):
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 5))
    file = export_onnx(model, tmp_path / "plain.onnx", (3, 8, 8), {})
    result = bench(
        str(file),
        "--runtimes",
        "onnxruntime",
        "--batch",
        "2",
        "--seconds",
        "0.1",
        "--json",
        str(tmp_path / "b.json"),
    )
    assert result.exit_code == 0, result.output
    row = json.loads((tmp_path / "b.json").read_text())["rows"][0]
    assert row["status"] == "ok" and row["accuracy"] is None and row["flops"] == 2 * 192 * 5
    assert "no accuracy" in result.output


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_device_cuda_without_a_gpu_is_one_line_and_exit_2(run_dir):
    code, _, err = run_kdedge("bench", str(run_dir), "--device", "cuda")
    assert code == 2 and err.strip().count("\n") == 0 and "no CUDA device is present" in err


@pytest.mark.parametrize(
    "args, words",
    [
        (["--batch", "0"], "--batch"),
        (["--runtimes", "tensorflow"], "--runtimes"),
        (["--device", "tpu"], "--device"),
        (["--limit", "0"], "--limit"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(run_dir, args, words):
    code, _, err = run_kdedge("bench", str(run_dir), *args)
    assert code == 2 and words in err and err.strip().count("\n") == 0


def test_missing_path_is_exit_2(tmp_path):
    code, _, err = run_kdedge("bench", str(tmp_path / "nope.onnx"))
    assert code == 2 and "nope.onnx: no such run directory or .onnx file" in err


def test_bench_never_imports_the_training_loop():
    import subprocess
    import sys

    code = (
        "import sys, kdedge.bench.run, kdedge.bench.worker, kdedge.bench.results, kdedge.bench.deploy, "
        "kdedge.commands.bench; bad = [m for m in sys.modules if m.startswith('kdedge.train')]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


def _finished_run(path: Path, teacher_hidden: list[int] | None, teacher_source: Path | None = None) -> Path:
    """A finished hinton_mnist-like run directory made without data: random tiny MLP weights, the summary
    a run writes. teacher_hidden None: the teacher was loaded from `teacher_source` and is not kept."""
    from kdedge.files.rundir import RunDir
    from kdedge.models.builders import build_model
    from kdedge.recipe import validate_recipe

    teacher = {"model": "mlp", "model_kwargs": {"hidden": teacher_hidden or [8]}}
    if teacher_source is not None:
        teacher["checkpoint"] = str(teacher_source)
    recipe = validate_recipe(
        {
            "name": "pairing",
            "data": {"name": "mnist"},
            "teacher": teacher,
            "student": {"model": "mlp", "model_kwargs": {"hidden": [4]}},
        }
    )
    run = RunDir(path)
    path.mkdir(parents=True)
    run.write_recipe(recipe)
    info = {
        "dataset": "mnist",
        "num_classes": 10,
        "in_channels": 1,
        "image_size": 28,
        "mean": [0.1307],
        "std": [0.3081],
        "class_names": [str(i) for i in range(10)],
    }
    run.update_summary("data", info)
    if teacher_hidden is not None:
        run.save_weights("teacher", build_model("mlp", 10, 1, 28, {"hidden": teacher_hidden}), recipe)
    run.update_summary("teacher", {"source": str(teacher_source)} if teacher_source else {"epochs": 1})
    run.save_weights("student", build_model("mlp", 10, 1, 28, {"hidden": [4]}), recipe)
    run.update_summary("student", {"epochs": 1})
    run.update_summary("finished", True)
    return path


def test_students_pair_with_the_teacher_their_run_records_not_a_same_named_folder(tmp_path):
    """a/run and b/run share a folder name; c/run's student learnt from a/run's teacher (teacher.checkpoint,
    summary.json teacher.source) and keeps no teacher of its own. Each student must be compared with its
    own teacher: a and c with a's (8 hidden units), b with b's (32)."""
    from kdedge.bench.results import add_comparisons
    from kdedge.bench.run import BenchOptions, plan_rows
    from kdedge.bench.targets import discover

    a = _finished_run(tmp_path / "a" / "run", [8])
    b = _finished_run(tmp_path / "b" / "run", [32])
    c = _finished_run(tmp_path / "c" / "run", None, teacher_source=a / "teacher.safetensors")
    rows = plan_rows(discover([a, b, c]), BenchOptions(batch_sizes=(1,), runtimes=("torch",)), tmp_path)
    for row in rows:  # as if every row ran: latency = parameter count, so a speed-up names its teacher
        row.update(status="ok", latency_ms_p50=float(row["params"]), accuracy=None)
    add_comparisons(rows, None)
    teacher_params = {Path(r["run"]).parent.name: r["params"] for r in rows if r["stage"] == "teacher"}
    assert set(teacher_params) == {"a", "b"} and teacher_params["a"] < teacher_params["b"]
    speedups = {
        Path(r["run"]).parent.name: r["speedup_vs_teacher"] * r["params"] for r in rows if r["stage"] == "student"
    }
    expected = {"a": teacher_params["a"], "b": teacher_params["b"], "c": teacher_params["a"]}
    assert speedups == pytest.approx(expected)
