"""Shared fixtures for the bench tests: a small trained MNIST run and ONNX files made here (with the
legacy TorchScript exporter: fast, one file) so the bench tests do not depend on kdedge.export.
Also `SleepyRunner` with known delays and `rows_in_this_process`, which measures bench rows without a child
process each (rows whose child crashes or hangs: bench_children.py)."""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

MNIST_META = {
    "kdedge.dataset": "mnist",
    "kdedge.input_size": "28,28",
    "kdedge.in_channels": "1",
    "kdedge.layout": "NCHW",
    "kdedge.mean": json.dumps([0.1307]),
    "kdedge.std": json.dumps([0.3081]),
}


def train_mnist_run(out: Path) -> Path:
    """A finished hinton_mnist run with tiny MLPs (64-64 teacher, 16 student), 1 epoch on 2,000 images,
    scored on 500 test images; made by the real CLI."""
    from typer.testing import CliRunner

    from kdedge.cli import app

    overrides = [
        "teacher.epochs=1",
        "student.epochs=1",
        "data.train_limit=2000",
        "data.test_limit=500",
        "teacher.model_kwargs={hidden: [64, 64]}",
        "student.model_kwargs={hidden: [16]}",
    ]
    args = ["distill", "hinton_mnist", "--out", str(out), "--quiet"]
    for item in overrides:
        args += ["--set", item]
    result = CliRunner().invoke(app, args, env={"KDEDGE_DATA": os.environ["KDEDGE_DATA"]})
    assert result.exit_code == 0, result.output
    return out


def export_onnx(model: torch.nn.Module, path: Path, shape: tuple[int, int, int], meta: dict[str, str]) -> Path:
    """fp32 ONNX per the kdedge contract: input 'images' (N, C, H, W), output 'logits', dynamic batch."""
    import onnx

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        model.eval(),
        torch.zeros(1, *shape),
        str(path),
        input_names=["images"],
        output_names=["logits"],
        dynamic_axes={"images": {0: "N"}, "logits": {0: "N"}},
        dynamo=False,
        opset_version=17,
    )
    proto = onnx.load(str(path))
    for key, value in meta.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, str(path))
    return path


def quantize_int8(fp32: Path, out: Path, calibration: np.ndarray) -> Path:
    """Static QDQ int8 (u8 activations, s8 per-channel weights) calibrated on `calibration` (N, C, H, W)."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{"images": calibration[i : i + 32]} for i in range(0, len(calibration), 32)])

        def get_next(self):
            return next(self.batches, None)

    quantize_static(
        str(fp32),
        str(out),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
    )
    proto = onnx.load(str(out))
    meta = {p.key: p.value for p in onnx.load(str(fp32)).metadata_props} | {"kdedge.precision": "int8"}
    del proto.metadata_props[:]
    for key, value in meta.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, str(out))
    return out


class SleepyRunner:
    """A fake runner whose call takes `delays_ms[i % len]` ms: known latencies for the timing statistics."""

    detail = "fake"

    def __init__(self, delays_ms: list[float]) -> None:
        self.delays_ms, self.calls = delays_ms, 0

    def predict(self, batch: np.ndarray) -> np.ndarray:
        time.sleep(self.delays_ms[self.calls % len(self.delays_ms)] / 1000)
        self.calls += 1
        return np.zeros((len(batch), 10), dtype=np.float32)

    def bind(self, batch: np.ndarray):
        return lambda: self.predict(batch)

    def sync(self) -> None:
        pass


def rows_in_this_process(monkeypatch: pytest.MonkeyPatch, in_a_child: Callable[[dict], bool] = lambda _: False) -> None:
    """Bench rows (kdedge bench's and the search's cost stage's) measured by the bench worker's own code (request
    and answer files, a runner's exception as the row's status) in this process, except those `in_a_child`
    picks: for tests of what a row holds or what is decided from it, where a runtime's start-up in a fresh
    process (ExecuTorch: ~6 s on one core, onnxruntime ~0.4 s a row) would be most of the test.
    tests/test_bench_timing.py runs real children: a crash, a hang, a skipped and an unknown runtime."""
    import kdedge.bench.run as bench_run
    import kdedge.experiments.search.cost as search_cost
    from kdedge.bench import worker
    from kdedge.bench.isolate import DEFAULT_ENTRY

    real = bench_run.run_isolated

    def measured(payload: dict[str, Any], timeout_s: float, entry: str = DEFAULT_ENTRY) -> dict[str, Any]:
        if in_a_child(payload):
            return real(payload, timeout_s, entry)
        with tempfile.TemporaryDirectory(prefix="kdedge-bench-") as folder:
            request, answer = Path(folder) / "request.json", Path(folder) / "answer.json"
            request.write_text(json.dumps(payload))
            assert worker.main([entry, str(request), str(answer)]) == 0
            return json.loads(answer.read_text())

    monkeypatch.setattr(bench_run, "run_isolated", measured)
    monkeypatch.setattr(search_cost, "run_isolated", measured)
