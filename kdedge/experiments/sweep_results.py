"""The results of a sweep: one row per finished point, sorted by the metric, as sweep.csv, sweep.md and
a heat map of the metric over the first two grid axes (sweep_heatmap.png); for a grid over the alpha
(either convention), the alpha study's table and loss curves too (kdedge.report.alpha_study)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from kdedge.files.atomic import atomic_write_text
from kdedge.files.rundir import RunDir
from kdedge.report import alpha_study

SWEEP_FILES = ("sweep.md", "sweep.csv", "sweep_heatmap.png")  # as the end-of-sweep line lists them


def is_finished(path: Path) -> bool:
    return bool(RunDir(path).read_summary().get("finished"))


def metric_value(summary: dict, metric: str) -> float:
    """The point's score: the bias-fixed student when there is one, else the student."""
    row = summary.get("student_bias_fixed") or summary.get("student") or {}
    return float(row.get(metric, float("nan")))


def sort_rows(rows: list[dict], metric: str) -> list[dict]:
    """Best first: fewest errors, or highest accuracy; points without a value last."""
    sign = 1 if metric.endswith("errors") else -1

    def key(row: dict) -> tuple[bool, float]:
        value = row.get(metric)
        missing = value is None or value != value
        return missing, 0.0 if missing else sign * value

    return sorted(rows, key=key)


def point_row(point: dict[str, Any], summary: dict, metric: str) -> dict[str, Any]:
    """One row of sweep.csv: the point's values, the metric and the student's (and fixed student's) errors."""
    student = summary.get("student") or {}
    fixed = summary.get("student_bias_fixed") or {}
    row = {
        **point,
        metric: metric_value(summary, metric),
        "student_test_errors": student.get("test_errors"),
        "student_test_accuracy": student.get("test_accuracy"),
        "train_seconds": student.get("train_seconds"),
    }
    if not fixed:  # the metric IS the student's value: the same number twice is one column
        row.pop(f"student_{metric}", None)
    if fixed:
        row |= {
            "fixed_test_errors": fixed.get("test_errors"),
            "bias_shift": fixed.get("bias_shift"),
            "omitted_errors_before": student.get("omitted_class_errors"),
            "omitted_errors_after": fixed.get("omitted_class_errors"),
        }
    return row


def rows_to_csv(rows: list[dict]) -> str:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def rows_to_markdown(rows: list[dict], title: str, note: str = "") -> str:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    lines = [f"# {title}", "", *([note, ""] if note else [])]
    lines += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(column_cell(c, row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def baseline_value(baseline_dir: Path | None, metric: str) -> float | None:
    """The no-KD baseline's metric, or None when there is no finished baseline run."""
    if baseline_dir is None or not is_finished(baseline_dir):
        return None
    return metric_value(RunDir(baseline_dir).read_summary(), metric)


def gain_column(metric: str) -> str:
    """The column comparing a point with its no-KD baseline (see `gain`)."""
    return "errors_vs_no_kd" if metric.endswith("errors") else f"{metric}_vs_no_kd"


def gain(value: float, baseline: float, metric: str) -> float:
    """The point against its no-KD baseline, signed as read: for an error count the relative change (-0.2 =
    20 % fewer errors, +0.2 = 20 % more), for an accuracy the difference (+0.01 = one point better)."""
    if metric.endswith("errors"):
        return (value - baseline) / baseline if baseline else float("nan")
    return value - baseline


def column_cell(column: str, value: Any) -> str:
    """cell(), but the relative gain over the baseline as a signed percentage."""
    if column == gain_column("test_errors") and isinstance(value, float) and value == value:
        return f"{value:+.1%}"
    return cell(value)


def cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1 else f"{value:g}"  # 0.5, not 0.5000
    return "" if value is None else str(value)


def result_files(sweep_dir: Path, grid_keys: Iterable[str]) -> list[str]:
    """Names of the files write_results leaves in sweep_dir: the table and heat map, and for a grid over
    the alpha the alpha study's files that exist (no loss curves without per-epoch records)."""
    names = [*SWEEP_FILES]
    if alpha_study.is_alpha_sweep(grid_keys):
        study = (alpha_study.CSV_NAME, alpha_study.MARKDOWN_NAME, alpha_study.PNG_NAME)
        names += [name for name in study if (sweep_dir / name).is_file()]
    return names


def write_results(
    sweep_dir: Path,
    points: list[dict],
    paths: list[Path],
    metric: str,
    name: str,
    baseline_dirs: list[Path | None] | None = None,
) -> list[dict]:
    """sweep.csv, sweep.md and sweep_heatmap.png from the points' summaries (finished ones only), each row
    compared with its no-KD baseline (baseline_dirs[i], when finished), and alpha_study.{csv,md} +
    alpha_study_curves.png when the grid varies the alpha."""
    baseline_dirs = baseline_dirs or [None] * len(points)
    # each baseline's summary read once, however many points share it; unfinished ones left out
    values = {path: baseline_value(path, metric) for path in dict.fromkeys(baseline_dirs) if path}
    values = {path: value for path, value in values.items() if value is not None}
    rows = []
    for point, path, base_dir in zip(points, paths, baseline_dirs, strict=True):
        if not is_finished(path):
            continue
        row = point_row(point, RunDir(path).read_summary(), metric)
        if base_dir in values:
            row[gain_column(metric)] = gain(row[metric], values[base_dir], metric)
        rows.append(row)
    rows = sort_rows(rows, metric)
    note = "; ".join(f"{path}: {metric} {cell(value)}" for path, value in values.items())
    note = f"no-KD baseline (same student, distillation.loss: none): {note}" if note else ""
    atomic_write_text(sweep_dir / "sweep.csv", rows_to_csv(rows))
    atomic_write_text(sweep_dir / "sweep.md", rows_to_markdown(rows, f"sweep of {name}, sorted by {metric}", note))
    if rows:
        heatmap_png(sweep_dir, rows, points, metric, next(iter(values.values())) if len(values) == 1 else None)
    if points and alpha_study.is_alpha_sweep(points[0]):
        alpha_study.write_study(sweep_dir, points, paths, name)
    return rows


def heatmap_png(
    sweep_dir: Path, rows: list[dict], points: list[dict], metric: str, baseline: float | None = None
) -> Path:
    """Metric over the first two grid axes (alpha x temperature for the Hinton sweep), axes in grid order;
    with more axes, the best value over the others; with one axis, a single row. The title gives the
    no-KD baseline's value when there is one."""
    import numpy as np

    from kdedge.report.plots import heatmap

    keys = list(points[0])
    row_key, col_key = (keys[0], keys[1]) if len(keys) > 1 else (None, keys[0])
    row_values = list(dict.fromkeys(p[row_key] for p in points)) if row_key else [""]
    col_values = list(dict.fromkeys(p[col_key] for p in points))
    values = np.full((len(row_values), len(col_values)), np.nan)
    for row in sort_rows(rows, metric)[::-1]:  # best last, so the best over other axes wins
        i = row_values.index(row[row_key]) if row_key else 0
        values[i, col_values.index(row[col_key])] = row[metric]
    fixed = any("fixed_test_errors" in row for row in rows)  # then the metric is the bias-fixed student's
    title = f"student {metric}" + (" (bias-fixed)" if fixed else "")
    title += ", best over other axes" if len(keys) > 2 else ""
    title += f"; no KD: {cell(baseline)}" if baseline is not None else ""
    return heatmap(
        values,
        [str(v) for v in row_values],
        [str(v) for v in col_values],
        sweep_dir / "sweep_heatmap.png",
        title,
        row_key or "",
        col_key,
        metric.replace("_", " ") + (" (lower is better)" if metric.endswith("errors") else ""),
    )
