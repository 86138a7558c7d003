"""Bench output: comparisons between rows, the rich table, JSON / CSV / Markdown files, the Pareto plot."""

from __future__ import annotations

import csv
import io
import json
import os
import platform
from pathlib import Path
from typing import Any

from rich.table import Table

from kdedge.checkpoint import atomic_write, atomic_write_text

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
    "qwk",
    "speedup_vs_teacher",
    "accuracy_delta_vs_teacher",
    "peak_fraction",
    "deploy",
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
    """One table line: the numbers a person compares, in short units."""
    acc = None if row.get("accuracy") is None else 100 * row["accuracy"]
    return [
        row["model"],
        row["arch"],
        row["runtime"],
        row["precision"],
        str(row["batch_size"]),
        _fmt(row.get("latency_ms_p50"), 3),
        _fmt(row.get("latency_ms_p99"), 3),
        _fmt(row.get("throughput_per_s"), 0),
        _fmt(row.get("peak_mem_mb"), 0),
        _fmt(None if row.get("flops") is None else row["flops"] / 1e6, 1),
        _fmt(row.get("size_mb"), 2),
        _fmt(acc),
        _fmt(row.get("qwk"), 3),
        _fmt(row.get("speedup_vs_teacher")),
        _fmt(row.get("accuracy_delta_vs_teacher")),
        _fmt(row.get("peak_fraction"), 3),
        "*" if row.get("deploy") else "",
        row["status"],
    ]


HEADERS = (
    "model",
    "arch",
    "runtime",
    "prec",
    "batch",
    "p50 ms",
    "p99 ms",
    "img/s",
    "mem MB",
    "MFLOP",
    "size MB",
    "acc %",
    "QWK",
    "x vs T",
    "d acc",
    "peak",
    "deploy",
    "status",
)


def bench_table(result: dict[str, Any]) -> Table:
    machine = result["machine"]
    title = (
        f"kdedge bench on {machine['cpu']} ({machine['cores']} cores, {machine['threads']} threads, "
        f"{machine['device']})"
        + (f", peak {result['peak_gflops']:.0f} GFLOP/s" if result["peak_gflops"] else "")
    )
    table = Table(
        title=title,
        caption="x vs T = teacher p50 / student p50 (same runtime, precision, batch); "
        "d acc = student - teacher (points); * = fastest within the accuracy bound of fp32",
    )
    for header in HEADERS:
        table.add_column(
            header, justify="left" if header in ("model", "arch", "runtime", "prec", "status") else "right"
        )
    for row in result["rows"]:
        style = (
            None if row["status"] == "ok" else ("yellow" if row["status"].startswith("skipped") else "red")
        )
        table.add_row(*display_cells(row), style=style)
    return table


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
        "|"
        + "|".join("---" if h in ("model", "arch", "runtime", "prec", "status") else "---:" for h in HEADERS)
        + "|",
    ]
    lines += [
        "| " + " | ".join(cell.replace("|", "/") for cell in display_cells(row)) + " |"
        for row in result["rows"]
    ]
    machine = result["machine"]
    head = (
        f"Machine: {machine['cpu']}, {machine['cores']} cores, {machine['threads']} threads, "
        f"flags {machine['cpu_flags']}\n\n"
    )
    atomic_write_text(path, head + "\n".join(lines) + "\n")


def write_pareto(result: dict[str, Any], path: Path, batch_size: int | None = None) -> None:
    """Latency p50 (log x) vs accuracy, one point per measured row at one batch size (the smallest by
    default: edge latency); teacher = square, student = circle, colour = runtime; the Pareto front dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    machine = result["machine"]
    measured = [r for r in result["rows"] if r["status"] == "ok"]
    # without any accuracy (no test data, e.g. APTOS) the y axis is the file size: still a trade-off picture
    by_accuracy = any(r.get("accuracy") is not None for r in measured)
    key, sign = ("accuracy", 1) if by_accuracy else ("size_mb", -1)
    scale = 100 if by_accuracy else 1
    ok = [r for r in measured if r.get(key) is not None]
    batch_size = batch_size or min((r["batch_size"] for r in ok), default=1)
    points = [r for r in ok if r["batch_size"] == batch_size]
    fig, ax = plt.subplots(figsize=(9, 6))
    colours = {
        "torch": "C0",
        "torch-compile": "C4",
        "onnxruntime": "C1",
        "onnxruntime-trt": "C5",
        "openvino": "C2",
    }
    for index, row in enumerate(sorted(points, key=lambda r: r["latency_ms_p50"])):
        marker = "s" if row["stage"] == "teacher" else "o"
        ax.scatter(
            row["latency_ms_p50"],
            scale * row[key],
            marker=marker,
            s=60,
            c=colours.get(row["runtime"], "k"),
            edgecolors="k" if row.get("deploy") else "none",
            linewidths=1.5,
        )
        short = {"torch": "pt", "torch-compile": "pt-c", "onnxruntime": "ort", "openvino": "ov"}
        ax.annotate(
            f"{row['arch'][:16]} {short.get(row['runtime'], row['runtime'])} {row['precision']}",
            (row["latency_ms_p50"], scale * row[key]),
            fontsize=7,
            xytext=(4, 3 if index % 2 else -9),  # alternate above / below: neighbours overlap less
            textcoords="offset points",
        )
    front, best = [], -float("inf")
    for row in sorted(points, key=lambda r: r["latency_ms_p50"]):
        if sign * row[key] > best:
            front.append(row)
            best = sign * row[key]
    ax.plot(
        [r["latency_ms_p50"] for r in front],
        [scale * r[key] for r in front],
        "k--",
        lw=0.8,
        label="Pareto front",
    )
    for runtime, colour in colours.items():
        if any(r["runtime"] == runtime for r in points):
            ax.scatter([], [], c=colour, label=runtime)
    ax.scatter([], [], marker="s", c="w", edgecolors="k", label="teacher")
    ax.scatter([], [], marker="o", c="w", edgecolors="k", label="student")
    ax.scatter([], [], marker="o", c="w", edgecolors="k", linewidths=2, label="deployable (thick edge)")
    if points:  # log scale needs data; with none the axes only carry the message below
        ax.set_xscale("log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:g}"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # minor ticks: no "2x10^1" clutter
    ax.set(
        xlabel=f"latency p50, ms (batch {batch_size}, log scale)",
        ylabel="top-1 accuracy, %" if by_accuracy else "file size, MB (no accuracy: no test data)",
        title=f"latency vs {key} ({machine['cpu']}, {machine['threads']} threads)",
    )
    if not points:
        ax.text(0.5, 0.5, "no measured row", ha="center", transform=ax.transAxes)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)
