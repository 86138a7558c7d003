"""Bench output: comparisons between rows, the rich table, JSON / CSV / Markdown files; the Pareto plot
is kdedge.bench.pareto (write_pareto, also importable from here)."""

from __future__ import annotations

import csv
import io
import json
import os
import platform
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.table import Table

from kdedge.bench.int8_speed import NOTE as INT8_NOTE
from kdedge.bench.int8_speed import flag_line
from kdedge.bench.pareto import write_pareto as write_pareto  # re-export: the plot is one of the outputs
from kdedge.files.atomic import atomic_write_text
from kdedge.ui.tables import Column, fitted_table, si

# The columns of the CSV / Markdown files, in order (JSON rows carry these and a few more).
COLUMNS = (
    "model",
    "arch",
    "stage",
    "runtime",
    "precision",
    "device",
    "batch_size",
    "threads",
    "latency_ms_p50",
    "latency_ms_p90",
    "latency_ms_p99",
    "throughput_per_s",
    "peak_mem_mb",
    "params",
    "flops",
    "size_mb",
    "accuracy",
    "agreement_fp32",
    "qwk",
    "speedup_vs_teacher",
    "accuracy_delta_vs_teacher",
    "peak_fraction",
    "deploy",
    "int8_not_faster",
    "status",
)


def machine_info(options) -> dict[str, Any]:
    """CPU model and flags that decide int8/bf16 speed, core count and the threads used."""
    model, flags = platform.processor(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
    info = {
        "cpu": model,
        "cores": os.cpu_count(),
        "cpu_flags": [f for f in wanted if f in flags],
        "threads": options.threads,
        "device": options.device,
    }
    if options.device == "cuda":
        import torch

        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def add_comparisons(rows: list[dict[str, Any]], peak_gflops: float | None) -> None:
    """speedup_vs_teacher (teacher p50 / student p50) and accuracy_delta_vs_teacher (points) for each
    student row against its teacher's row of the same runtime, precision, device and batch; and the
    achieved fraction of the measured peak GFLOP/s. A student's teacher is the teacher row with the same
    _pair_key (the teacher weights its run records; never a folder name), from its own run if there."""
    teachers: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        if r["stage"] == "teacher" and r["status"] == "ok" and r.get("_pair_key"):
            teachers.setdefault(_pairing(r), []).append(r)
    for row in rows:
        row.update(speedup_vs_teacher=None, accuracy_delta_vs_teacher=None, peak_fraction=None)
        if row["status"] != "ok":
            continue
        mine = teachers.get(_pairing(row), []) if row["stage"] == "student" else []
        teacher = next((t for t in mine if t.get("run") == row.get("run")), mine[0] if mine else None)
        if teacher is not None:
            row["speedup_vs_teacher"] = teacher["latency_ms_p50"] / row["latency_ms_p50"]
            if row["accuracy"] is not None and teacher["accuracy"] is not None:
                row["accuracy_delta_vs_teacher"] = 100 * (row["accuracy"] - teacher["accuracy"])
        if peak_gflops and row.get("flops"):
            row["peak_fraction"] = row["flops"] * row["throughput_per_s"] / (peak_gflops * 1e9)


def _pairing(row: dict[str, Any]) -> tuple:
    return row.get("_pair_key"), row["runtime"], row["precision"], row["device"], row["batch_size"]


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else ""
    if isinstance(value, float):
        return f"{value:.{digits}f}" if abs(value) < 1e4 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def display_cells(row: dict[str, Any]) -> list[str]:
    """One table line: the numbers a person compares, in short units (order of COLUMNS_SHOWN)."""
    acc = None if row.get("accuracy") is None else 100 * row["accuracy"]
    return [
        row["model"],
        row["runtime"],
        row["precision"],
        str(row["batch_size"]),
        _fmt(row.get("latency_ms_p50"), 3),
        _fmt(acc),
        "*" if row.get("deploy") else "",
        _fmt(row.get("speedup_vs_teacher")),
        _fmt(row.get("accuracy_delta_vs_teacher")),
        _fmt(row.get("latency_ms_p99"), 3),
        "-" if row.get("throughput_per_s") is None else f"{row['throughput_per_s']:,.0f}",
        _fmt(row.get("size_mb"), 2),
        _fmt(row.get("qwk"), 3),
        _fmt(row.get("peak_mem_mb"), 0),
        si(row.get("flops")),
        _fmt(row.get("peak_fraction"), 3),
        row["arch"],
        _status_cell(row),
    ]


def _status_cell(row: dict[str, Any]) -> str:
    """Empty for a plain ok row; the status otherwise; the int8 flag (kdedge.bench.int8_speed) on an ok row."""
    if row["status"] != "ok":
        return row["status"]
    return f"! {INT8_NOTE}" if row.get("int8_not_faster") else ""


# What a row is (model, runtime, precision, batch) is never hidden or cut; the rest is hidden, least useful
# first (drop rank 1 first), when the terminal is narrow; x vs T and Δacc pts, the comparison bench exists
# for, go last. --wide and the JSON / CSV files keep everything.
COLUMNS_SHOWN = (
    Column("model", key=True, left=True),
    Column("runtime", key=True, left=True),
    Column("prec", key=True, left=True),
    Column("batch", key=True),
    Column("p50 ms"),
    Column("acc %"),
    Column("*"),
    Column("x vs T", drop=7),
    Column("Δacc pts", drop=6),
    Column("p99 ms", drop=4),
    Column("img/s", drop=5),
    Column("size MB", drop=3),
    Column("QWK", drop=4),
    Column("mem MB", drop=2),
    Column("FLOPs", drop=2),
    Column("peak", drop=1),
    Column("arch", drop=1, left=True),
    Column("status", left=True),
)
HEADERS = tuple(column.header for column in COLUMNS_SHOWN)
CAPTION = (
    "x vs T = teacher p50 / student p50 (same runtime, precision, batch); Δacc pts = student - "
    "teacher accuracy; * = fastest file within the accuracy bound of fp32"
)


def _style(row: dict[str, Any]) -> str | None:
    """Red for a failed row, yellow for a skipped one or a flagged int8 row, none for the rest."""
    if row["status"] == "ok":
        return "yellow" if row.get("int8_not_faster") else None
    return "yellow" if row["status"].startswith("skipped") else "red"


def bench_table(result: dict[str, Any], width: int = 200, wide: bool = False) -> Table:
    """The rows that fit `width` characters (unless `wide`); model / runtime / precision / batch whole."""
    machine = result["machine"]
    title = (
        f"kdedge bench on {machine['cpu']} ({machine['cores']} cores, {machine['threads']} threads, "
        f"{machine['device']})" + (f", peak {result['peak_gflops']:.0f} GFLOP/s" if result["peak_gflops"] else "")
    )
    styles = [_style(r) for r in result["rows"]]
    rows = [display_cells(row) for row in result["rows"]]
    caption = "\n".join(line for line in (CAPTION, flag_line(result["rows"])) if line)
    columns = _fitting_columns(result["rows"])
    return fitted_table(title, columns, rows, width, wide, caption, styles, more="--wide or --json FILE")


def _fitting_columns(rows: list[dict[str, Any]]) -> tuple[Column, ...]:
    """COLUMNS_SHOWN, with the status column hidden first when most rows have none (a plain ok row's cell is
    empty; a failed row stays red or yellow, and the command's last line counts the failures)."""
    with_status = sum(1 for row in rows if _status_cell(row))
    if 2 * with_status >= len(rows):
        return COLUMNS_SHOWN
    return tuple(replace(c, drop=1) if c.header == "status" else c for c in COLUMNS_SHOWN)


def write_json(result: dict[str, Any], path: Path) -> None:
    atomic_write_text(path, json.dumps(result, indent=2, default=str))


def write_csv(result: dict[str, Any], path: Path) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(result["rows"])
    atomic_write_text(path, buffer.getvalue())


def write_markdown(result: dict[str, Any], path: Path) -> None:
    lines = [
        "| " + " | ".join(HEADERS) + " |",
        "|" + "|".join("---" if c.left else "---:" for c in COLUMNS_SHOWN) + "|",
    ]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in display_cells(row)) + " |" for row in result["rows"]]
    machine = result["machine"]
    head = (
        f"Machine: {machine['cpu']}, {machine['cores']} cores, {machine['threads']} threads, "
        f"flags {machine['cpu_flags']}\n\n"
    )
    below = flag_line(result["rows"])
    atomic_write_text(path, head + "\n".join(lines) + "\n" + (f"\n{below}\n" if below else ""))
