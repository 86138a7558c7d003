"""kdedge.api: `import kdedge` stays light, README's Python example runs, and the CLI commands are a thin
layer that builds an options object and calls the API."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import run_kdedge


def test_import_kdedge_is_light() -> None:
    """`import kdedge` (and touching the API names) imports neither torch nor onnxruntime: predict stays
    torch-free."""
    import subprocess
    import sys

    code = "import sys, kdedge; kdedge.Run; kdedge.distill; print(sorted({'torch', 'onnxruntime'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stderr


@pytest.mark.usefixtures("one_torch_thread")
def test_python_api_distill_export_bench(data_root: Path, tmp_path: Path) -> None:
    """README's example, tiny: distill -> Run, export(run) -> rows, bench(run) -> rows."""
    import kdedge

    tiny = {
        "teacher.epochs": 1,
        "student.epochs": 1,
        "data.train_limit": 300,
        "data.test_limit": 100,
        "teacher.model_kwargs.hidden": [16],
    }
    run = kdedge.distill("hinton_mnist", overrides=tiny, out=tmp_path / "run", data_root=str(data_root), quiet=True)
    assert isinstance(run, kdedge.Run) and run.path == tmp_path / "run"
    assert run.summary["finished"] and run.weights("student").is_file()
    assert run.recipe.teacher.model_kwargs["hidden"] == [16]
    assert run.summary["student"]["test_count"] == 100
    rows = kdedge.export(run, models="student", precisions="fp32", data_root=str(data_root), quiet=True)
    assert [(r.name, r.status) for r in rows] == [("student.fp32", "ok")]
    assert Path(rows[0].path) == run.onnx("student", "fp32") and run.onnx().is_file()
    measured = kdedge.bench(
        run, batch="1", seconds=0.2, runtimes="onnxruntime", limit=100, data_root=str(data_root), quiet=True
    )
    ok = [r for r in measured if r["status"] == "ok"]
    assert ok and all(r["runtime"] == "onnxruntime" and r["latency_ms_p50"] > 0 for r in ok)
    assert ok[0]["accuracy"] == pytest.approx(rows[0].test_accuracy)  # the same 100 test digits


def test_the_cli_is_a_thin_layer_on_the_api(monkeypatch, tmp_path: Path) -> None:
    """`kdedge distill` / `train` / `export` / `bench` build their command's options object and call
    kdedge.api with it; `train` is distill stopped after the teacher."""
    import kdedge.api
    from kdedge.commands.export import ExportResult
    from kdedge.commands.options import BenchCommandOptions, DistillOptions, ExportOptions

    calls = []
    for name in ("distill", "train", "export", "bench"):
        result = {"export": ExportResult([], []), "bench": [{"status": "ok"}]}.get(name)  # bench: one row ran
        monkeypatch.setattr(kdedge.api, name, lambda *a, _n=name, _r=result, **k: calls.append((_n, a, k)) or _r)
    assert run_kdedge("distill", "hinton_mnist", "--set", "a=1", "b=2", "--out", tmp_path)[0] == 0
    assert run_kdedge("train", "--set", "a=1", "b=2", "hinton_mnist", "--skip-bad-images")[0] == 0
    assert run_kdedge("export", tmp_path, "--precision", "fp32", "--wide")[0] == 0
    assert run_kdedge("bench", tmp_path, "--batch", "1")[0] == 0
    assert [(name, args[0].__class__, k) for name, args, k in calls] == [
        ("distill", DistillOptions, {}),
        ("train", DistillOptions, {}),
        ("export", ExportOptions, {}),
        ("bench", BenchCommandOptions, {}),
    ]
    distill, train, export, bench = (args[0] for _, args, _ in calls)
    assert distill == DistillOptions("hinton_mnist", ("a=1", "b=2"), tmp_path)
    assert train.stages == ("teacher",) and train.recipe == "hinton_mnist" and train.overrides == ("a=1", "b=2")
    assert train.set_values() == ["a=1", "b=2", "data.skip_bad_images=true"]
    assert export.wide is True and export.precisions == "fp32" and export.run_dir == tmp_path
    assert bench.batch == "1" and bench.paths == (tmp_path,)
