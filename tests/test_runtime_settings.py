"""Each format row names the settings its runner gives the runtime (the fastest on a CPU), and the runners use
them: `kdedge formats --json` shows them; onnxruntime runs with every graph optimisation and the asked threads."""

from __future__ import annotations

import json

import torch
from bench_helpers import export_onnx
from typer.testing import CliRunner

from kdedge.bench.runners import OrtRunner
from kdedge.cli import app
from kdedge.runtime.formats import FORMATS


def test_every_format_row_names_its_runtime_settings() -> None:
    result = CliRunner().invoke(app, ["formats", "--json"])
    assert result.exit_code == 0, result.output
    shown = {row["format"]: row["runtime settings"] for row in json.loads(result.output)}
    assert shown == {name: fmt.settings for name, fmt in FORMATS.items()}
    assert all(shown.values())
    assert "ORT_ENABLE_ALL" in shown["onnx"] and "LATENCY" in shown["openvino"]
    assert "batch bound" in shown["executorch"] and "XNNPACK" in shown["litert"]


def test_onnxruntime_runs_with_every_graph_optimisation_and_the_asked_threads(tmp_path) -> None:
    import onnxruntime as ort

    file = export_onnx(
        torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3)), tmp_path / "m.onnx", (3, 2, 2), {}
    )
    options = OrtRunner(str(file), "cpu", threads=1).session.get_session_options()
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (1, 1)
