"""`kdedge bench` fails (exit 1) when no row was measured, and says how many failed when some did."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from bench_helpers import export_onnx
from cli_helpers import run_kdedge


@pytest.fixture
def onnx_file(tmp_path: Path) -> Path:
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 5))
    return export_onnx(model, tmp_path / "plain.onnx", (3, 8, 8), {})


def failing_rows(monkeypatch, how_many: int) -> None:
    """The first `how_many` rows' children 'crash'; the others run for real."""
    import kdedge.bench.run as run

    real, calls = run.run_isolated, []

    def maybe_fail(payload, timeout_s, entry):
        calls.append(payload)
        if len(calls) <= how_many:
            return {"status": "error: child process killed by SIGKILL (out of memory?)"}
        return real(payload, timeout_s, entry)

    monkeypatch.setattr(run, "run_isolated", maybe_fail)


def bench_args(file: Path) -> list[str]:
    return ["bench", str(file), "--runtimes", "onnxruntime", "--batch", "1,2", "--seconds", "0.05"]


def test_every_row_failed_is_exit_1_with_one_line(onnx_file, monkeypatch):
    failing_rows(monkeypatch, 2)
    code, _, err = run_kdedge(*bench_args(onnx_file))
    assert code == 1, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "no bench row succeeded: 2 of 2 rows failed" in lines[0]
    assert "SIGKILL" in lines[0]


def test_some_rows_failed_is_exit_0_and_the_last_line_counts_them(onnx_file, monkeypatch):
    failing_rows(monkeypatch, 1)
    code, out, err = run_kdedge(*bench_args(onnx_file))
    assert code == 0, err
    assert out.strip().splitlines()[-1] == "1 of 2 rows failed (see the status column)"
