"""Tables and lists at 100 and 200 columns: `kdedge formats` hides its long settings / note columns (not every
column cut to three letters), `kdedge bench` keeps the teacher comparison and hides a mostly empty status
column first, `kdedge recipes` lines fit. Fast: no training, no torch."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from rich.console import Console

if TYPE_CHECKING:
    from kdedge.export.table import ExportRow

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


# -- bench, export, summary and sweep tables fit 80 and 120 columns, the texts that tell rows apart whole ----
def _assert_rows_whole(lines: list[str], width: int, rows: list[tuple[str, ...]]) -> None:
    """Every line fits; each row's distinguishing texts appear whole, together on one line."""
    table = "\n".join(lines)
    assert max(len(line) for line in lines) <= width, table
    for texts in rows:
        whole = [rf"(?<![\w.]){re.escape(text)}(?![\w.])" for text in texts]
        found = any(all(re.search(pattern, line) for pattern in whole) for line in lines)
        assert found, f"{texts} not whole on one line at {width} columns:\n{table}"


def _bench_rows() -> list[dict]:
    rows = []
    for stage, latency, flops in (("teacher", 2.5, 4_790_000), ("student", 0.11, 49_000)):
        for runtime, precision in (
            ("torch", "fp32"),
            ("onnxruntime", "fp32"),
            ("onnxruntime", "int8"),
            ("openvino", "bf16"),
        ):
            for batch in (1, 32):
                rows.append(
                    {
                        "model": f"hinton_mnist_800/{stage}",
                        "arch": "mlp",
                        "stage": stage,
                        "runtime": runtime,
                        "precision": precision,
                        "batch_size": batch,
                        "latency_ms_p50": latency * batch,
                        "latency_ms_p99": latency * batch * 1.2,
                        "throughput_per_s": 1000 * batch / latency,
                        "peak_mem_mb": 12.0,
                        "flops": flops,
                        "size_mb": 0.2,
                        "accuracy": 0.97,
                        "qwk": None,
                        "speedup_vs_teacher": 22.0 if stage == "student" else None,
                        "accuracy_delta_vs_teacher": -1.2 if stage == "student" else None,
                        "peak_fraction": None,
                        "deploy": precision == "int8",
                        "status": "ok",
                    }
                )
    return rows


@pytest.mark.parametrize("width", [80, 120])
def test_bench_table_fits_and_keeps_model_runtime_precision_whole(width: int) -> None:
    from kdedge.bench.results import bench_table

    rows = _bench_rows()
    result = {
        "rows": rows,
        "peak_gflops": None,
        "machine": {"cpu": "AMD EPYC 7B13", "cores": 2, "threads": 2, "device": "cpu"},
    }
    lines = _render(bench_table(result, width), width)
    _assert_rows_whole(lines, width, [(r["model"], r["runtime"], r["precision"]) for r in rows])
    text = "\n".join(lines)
    assert "p50 ms" in text and "acc %" in text and "…" not in text
    assert "peak" not in text.split("\n")[3] and "QWK" not in text  # empty columns are not shown
    if width == 80:
        assert "hidden to fit 80 columns" in text and "--wide" in text
    wide = "\n".join(_render(bench_table(result, width, wide=True), 250))
    assert "FLOPs" in wide and "49k" in wide and "4.79M" in wide and "MFLOP" not in wide


def _export_row(**overrides: Any) -> ExportRow:
    """One file's row of `kdedge export`'s table (student.fp32 unless overridden): random-input |Δ| 1.9
    (agreement 38 %), 99.5 % agreement with fp32 on 200 real test images; `overrides` replace any field."""
    from kdedge.export.table import ExportRow

    fields = {
        "stage": "student",
        "precision": "fp32",
        "seconds": 1.5,
        "size_mb": 0.1,
        "max_abs_diff": 1.9,
        "rel_diff": 0.1,
        "random_agreement": 0.38,
        "test_accuracy": 0.97,
        "test_agreement": 0.995,
        "test_max_abs_diff": 0.02,
        "test_count": 200,
    }
    return ExportRow(**(fields | overrides))


@pytest.mark.parametrize("width", [80, 120])
def test_export_table_fits_and_keeps_file_names_whole(width: int) -> None:
    from kdedge.export.table import export_table

    stages, precisions = ("teacher", "student"), ("fp32", "fp16", "int8")
    rows = [_export_row(stage=stage, precision=precision) for stage in stages for precision in precisions]
    lines = _render(export_table(rows, "runs/try1: ONNX export (opset 20, dynamo exporter)", width), width)
    _assert_rows_whole(lines, width, [(f"{r.stage}.{r.precision}",) for r in rows])
    text = "\n".join(lines)
    assert "=fp32 %" in text and "99.50" in text
    assert "1.9e+00" not in "".join(line for line in lines if ".int8." in line)  # random-input |Δ|: fp32 only


def test_export_progress_line_gives_random_input_parity_for_fp32_only() -> None:
    from kdedge.export.table import file_line

    int8 = file_line(_export_row(precision="int8"))
    assert "random" not in int8 and "38" not in int8
    assert "agreement with fp32 99.50% on 200 real test images" in int8
    assert "random batches" in file_line(_export_row(precision="fp32"))


@pytest.mark.parametrize("width", [80, 120])
def test_summary_table_fits_hides_qwk_off_ordinal_data_and_train_s_in_eval(width: int) -> None:
    from kdedge.ui.console import summary_table

    row = {
        "model": "resnet18_cifar_teacher",
        "params": 11_000_000,
        "test_accuracy": 0.95,
        "test_errors": 500,
        "test_count": 10_000,
        "test_qwk": 0.9,
    }
    student = row | {"model": "mobilenetv3_small"}
    summary = {"data": {"dataset": "cifar10"}, "teacher": row, "student": student}
    lines = _render(summary_table(summary, "runs/x: re-evaluated", width), width)
    _assert_rows_whole(lines, width, [("teacher", row["model"]), ("student", student["model"])])
    text = "\n".join(lines)
    assert "QWK" not in text and "train s" not in text  # not ordinal; eval trains nothing
    assert "11M" in text and "500/10000" in text
    aptos = summary | {"data": {"dataset": "aptos2019"}, "student": row | {"train_seconds": 12.0}}
    lines = _render(summary_table(aptos, "runs/y", width), width)
    header = next(line for line in lines if "stage" in line)
    assert "QWK" in header and "0.900" in "\n".join(lines)
    assert ("train s" in header) == (width == 120)  # the first column hidden at 80


@pytest.mark.parametrize("width", [80, 120])
def test_sweep_table_fits_and_reads_without_double_negatives(width: int) -> None:
    from kdedge.commands.sweep import _rows_table

    rows = [
        {
            "distillation.alpha": a,
            "distillation.temperature": t,
            "test_errors": 200.0 + 10 * i,
            "student_test_accuracy": 0.98,
            "train_seconds": 12.5,
            "errors_vs_no_kd": -0.316 + 0.5 * i,
        }
        for i, (a, t) in enumerate([(0.5, 2.5), (0.7, 4.0), (0.9, 8.0)])
    ]
    lines = _render(_rows_table(rows, "test_errors", "hinton_mnist_sweep: sweep, best first", width), width)
    from kdedge.experiments.sweep_results import cell

    _assert_rows_whole(
        lines, width, [(cell(r["distillation.alpha"]), cell(r["distillation.temperature"])) for r in rows]
    )
    text = "\n".join(lines)
    assert "errors vs no KD" in text and "-31.6%" in text and "+68.4%" in text and "fewer" not in text
    assert text.count("alpha") == 1 and "test_errors (sorted)".replace("_", " ") in text.replace("_", " ")
