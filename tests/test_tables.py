"""Tables and lists at 100 and 200 columns: `kdedge formats` hides its long settings / note columns (not every
column cut to three letters), `kdedge bench` keeps the teacher comparison and hides a mostly empty status
column first, `kdedge recipes` lines fit. Fast: no training, no torch."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

REPO = Path(__file__).resolve().parents[1]


def _render(table, width: int) -> list[str]:
    console = Console(width=width, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    console.print(table)
    return console.export_text().splitlines()


def _kdedge(width: int, *args: str) -> list[str]:
    """stdout lines of `kdedge ARGS` in a child process whose terminal is `width` columns ($COLUMNS)."""
    env = {**os.environ, "COLUMNS": str(width), "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "kdedge", *args], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def _header(lines: list[str]) -> list[str]:
    """The column headers of a rendered rich table (its first line of ┃ cells)."""
    row = next(line for line in lines if line.startswith("┃"))
    return [cell.strip() for cell in row.strip("┃").split("┃")]


@pytest.mark.parametrize("width", [100, 200])
def test_formats_keeps_name_suffix_precisions_run_here_and_hides_the_long_columns(width: int) -> None:
    from kdedge.runtime.formats import FORMATS

    lines = _kdedge(width, "formats")
    text = "\n".join(lines)
    assert max(len(line) for line in lines) <= width, text
    assert len(lines) < 30, text  # was 110 lines at 100 columns: every column squeezed, the note a word a line
    headers = _header(lines)
    assert headers[:3] == ["format", "suffix", "precisions"] and "run here" in headers, headers
    assert "note" not in headers and "runtime settings" not in headers
    assert re.search(rf"hidden to fit {width} columns: .*note.*\(--wide shows them\)", " ".join(text.split()))
    for name in FORMATS:  # every format named whole on its row
        assert any(re.match(rf"│ {re.escape(name)}\s+│", line) for line in lines), name
    if width == 200:
        assert {"runtimes", "devices", "batch", "extra", "convert here"} <= set(headers)


def test_formats_wide_shows_every_column() -> None:
    from kdedge.commands.formats import formats_table
    from kdedge.runtime.formats import table_rows

    rows = table_rows()
    wide = _render(formats_table(rows, 100, wide=True), 400)
    assert _header(wide) == list(rows[0]) and not any("hidden to fit" in line for line in wide)


def _bench_row(stage: str, runtime: str, precision: str, status: str = "ok") -> dict:
    student = stage == "student"
    return {
        "model": f"retina_mobile/{stage}",
        "arch": "mobilenetv2_100",
        "runtime": runtime,
        "precision": precision,
        "batch_size": 1,
        "latency_ms_p50": 1.5 if student else 30.0,
        "latency_ms_p99": 2.0,
        "throughput_per_s": 600.0,
        "peak_mem_mb": 80.0,
        "flops": 6e8,
        "size_mb": 9.1,
        "accuracy": 0.52,
        "qwk": 0.61,
        "speedup_vs_teacher": 20.0 if student else None,
        "accuracy_delta_vs_teacher": -1.5 if student else None,
        "peak_fraction": None,
        "deploy": False,
        "status": status,
    }


def _bench(rows: list[dict]) -> dict:
    return {"rows": rows, "peak_gflops": None, "machine": {"cpu": "x86", "cores": 2, "threads": 2, "device": "cpu"}}


def test_bench_at_100_columns_keeps_x_vs_t_and_delta_acc_and_hides_a_mostly_empty_status() -> None:
    from kdedge.bench.results import bench_table

    rows = [_bench_row(s, r, p) for s in ("teacher", "student") for r in ("torch", "onnxruntime") for p in ("fp32",)]
    rows.append(_bench_row("student", "openvino", "int8", "skipped: openvino is not installed (pip install 'x')"))
    lines = _render(bench_table(_bench(rows), 100), 100)
    headers, text = _header(lines), " ".join(" ".join(lines).split())
    assert max(len(line) for line in lines) <= 100
    assert {"x vs T", "Δacc pts"} <= set(headers) and "status" not in headers, "\n".join(lines)
    assert re.search(r"hidden to fit 100 columns: .*status", text)
    failed = [_bench_row("student", r, "int8", "error: child process killed by SIGABRT") for r in ("a", "b")]
    mostly_failed = _render(bench_table(_bench([rows[0], *failed]), 100), 100)
    assert "status" in _header(mostly_failed)  # then the status is what the table says


@pytest.mark.parametrize("width", [100, 200])
def test_recipes_one_line_each_that_fits(width: int) -> None:
    from kdedge.recipe import packaged_recipes

    lines = _kdedge(width, "recipes")
    assert sorted(line.split()[0] for line in lines) == sorted(packaged_recipes())
    assert max(len(line) for line in lines) <= width, "\n".join(lines)
    hinton = next(line for line in lines if line.startswith("hinton_mnist "))
    assert "Hinton et al. 2015" in hinton  # the first sentence, not cut at "al."
