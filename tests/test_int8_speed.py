"""An int8 file that is not faster than its fp32 file (same runtime, batch and bench) is flagged in the bench
table and never offered as the deploy choice. Synthetic rows: no timing here."""

from __future__ import annotations

from pathlib import Path

from kdedge.bench.deploy import choose, mark_deployable
from kdedge.bench.int8_speed import flag_slow_int8
from kdedge.bench.results import bench_table, display_cells, write_markdown


def _row(runtime: str, precision: str, batch: int, p50: float, accuracy: float | None = 0.9) -> dict:
    return {
        "model": "run/student",
        "run": "/runs/run",
        "stage": "student",
        "arch": "mlp",
        "device": "cpu",
        "runtime": runtime,
        "precision": precision,
        "status": "ok",
        "batch_size": batch,
        "latency_ms_p50": p50,
        "accuracy": accuracy,
        "agreement_fp32": 1.0,
    }


def _result(rows: list[dict]) -> dict:
    machine = {"cpu": "test cpu", "cores": 2, "threads": 1, "device": "cpu", "cpu_flags": []}
    return {"rows": rows, "machine": machine, "peak_gflops": None}


def test_int8_is_flagged_only_against_the_fp32_file_of_its_own_runtime_and_batch() -> None:
    rows = [
        _row("onnxruntime", "fp32", 1, 1.0),
        _row("onnxruntime", "int8", 1, 1.4),  # slower at batch 1: flagged
        _row("onnxruntime", "fp32", 32, 10.0),
        _row("onnxruntime", "int8", 32, 6.0),  # faster at batch 32: not flagged
        _row("executorch", "fp32", 1, 2.0),
        _row("executorch", "int8", 1, 2.0),  # a tie is not faster: flagged
        _row("openvino", "int8", 1, 5.0),  # no openvino fp32 row to compare with: not flagged
        dict(_row("litert", "fp32", 1, 0.5), status="error: crashed"),
        _row("litert", "int8", 1, 3.0),  # its fp32 row failed: nothing to compare with
    ]
    flagged = flag_slow_int8(rows)
    assert [(r["runtime"], r["batch_size"]) for r in flagged] == [("onnxruntime", 1), ("executorch", 1)]
    assert [r["int8_not_faster"] for r in rows] == [False, True, False, False, False, True, False, False, False]
    other_run = [dict(r, run="/runs/other") for r in rows[:1]] + rows[1:2]
    assert flag_slow_int8(other_run) == []  # another model's fp32 row is no twin


def test_the_table_and_the_markdown_file_show_the_flag(tmp_path: Path) -> None:
    rows = [_row("onnxruntime", "fp32", 1, 1.0), _row("onnxruntime", "int8", 1, 1.4)]
    mark_deployable(rows, 0.5)
    assert display_cells(rows[1])[-1] == "! int8 not faster than fp32"
    assert display_cells(rows[0])[-1] == ""
    caption = str(bench_table(_result(rows), width=300).caption)
    assert "! int8 not faster than fp32: run/student onnxruntime (batch 1)" in caption
    assert "not offered as the deploy choice" in caption
    write_markdown(_result(rows), tmp_path / "bench.md")
    text = (tmp_path / "bench.md").read_text()
    assert "| ! int8 not faster than fp32 |" in text and "\n! int8 not faster than fp32: run/student" in text
    quiet = [_row("onnxruntime", "fp32", 1, 1.0), _row("onnxruntime", "int8", 1, 0.6)]
    mark_deployable(quiet, 0.5)
    assert "int8 not faster" not in str(bench_table(_result(quiet), width=300).caption)


def test_a_slow_int8_file_is_never_the_deploy_choice() -> None:
    # executorch's fp32 row has no accuracy (not scored), so before the flag its int8 file, the fastest
    # accurate row, was chosen although the fp32 .pte runs faster
    rows = [
        _row("onnxruntime", "fp32", 1, 3.0),
        _row("executorch", "fp32", 1, 1.0, accuracy=None),
        _row("executorch", "int8", 1, 1.5),
        _row("onnxruntime", "int8", 1, 3.0),  # a tie with its fp32 row, listed first of the two below
    ]
    best = choose(rows, 0.5)
    assert (best["runtime"], best["precision"]) == ("onnxruntime", "fp32")
    mark_deployable(rows, 0.5)
    assert [r["deploy"] for r in rows] == [True, False, False, False]
    tie_first = [rows[3], rows[0]]
    assert choose(tie_first, 0.5)["precision"] == "fp32"
