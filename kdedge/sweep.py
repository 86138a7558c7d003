"""`kdedge sweep`: many students from ONE teacher, one run directory per grid point.

SWEEP/teacher/            the teacher, trained once (skipped when the recipe names teacher.checkpoint)
SWEEP/points/<k=v,...>/   one ordinary run directory per point (its teacher.checkpoint is the sweep's teacher)
SWEEP/sweep.json          grid, metric, teacher weights: what `kdedge report` and a resumed sweep read
SWEEP/sweep.csv, .md      one row per point, sorted by the metric;  SWEEP/sweep_heatmap.png  test errors

A point whose summary.json says "finished" is skipped, so an interrupted sweep resumes where it stopped.
Grid keys under `teacher.` are refused: every point shares the one teacher.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import yaml

from kdedge.checkpoint import RunDir, atomic_write_text
from kdedge.errors import InputError
from kdedge.recipe import Recipe, apply_overrides, check_key, validate_recipe

Grid = dict[str, list[Any]]


def parse_grid(items: list[str]) -> Grid:
    """['distillation.alpha=0.1,0.5', 'distillation.temperature=2'] -> {key: [0.1, 0.5], ...}; values are
    YAML scalars (typed later by the schema); keys are checked against the recipe schema."""
    grid: Grid = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        values = [v.strip() for v in raw.split(",") if v.strip()]
        if not sep or not key or not values:
            raise InputError(f"--grid '{item}': expected KEY=V1,V2,..., e.g. distillation.temperature=2.5,4,8")
        check_key(key)
        grid[key] = [yaml.safe_load(v) for v in values]
    return grid


def check_grid(grid: Grid) -> None:
    """An empty grid, an empty axis or a teacher key is bad input."""
    if not grid:
        raise InputError("sweep: empty grid; give --grid KEY=V1,V2 (e.g. distillation.alpha=0.1,0.5,0.9) or a "
                         "recipe with a sweep.grid section")  # fmt: skip
    for key, values in grid.items():
        check_key(key)
        if not values:
            raise InputError(f"sweep.grid.{key}: no values; give at least one")
        if key.startswith("teacher."):
            raise InputError(f"sweep.grid.{key}: the sweep trains ONE teacher for all points; sweep student, "
                             "distillation or data keys (run `kdedge train` per teacher setting instead)")  # fmt: skip


def grid_points(grid: Grid) -> list[dict[str, Any]]:
    """Cartesian product, in grid order: [{key: value, ...}, ...]."""
    keys = list(grid)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*grid.values())]


def point_name(point: dict[str, Any]) -> str:
    """'distillation.alpha=0.5,distillation.temperature=4': a folder name (odd characters become '_')."""
    text = ",".join(f"{key}={json.dumps(value) if isinstance(value, list) else value}" for key, value in point.items())
    return re.sub(r"[^A-Za-z0-9._=,+-]", "_", text)


def point_recipe(base: Recipe, point: dict[str, Any], teacher_weights: str | None) -> Recipe:
    """The base recipe with the point's values, the shared teacher's weights, and no sweep section."""
    overrides = dict(point) | ({"teacher.checkpoint": teacher_weights} if teacher_weights else {})
    config = apply_overrides(base.to_dict(), overrides)
    config["sweep"] = None
    return validate_recipe(config, source=f"sweep point {point_name(point)}")


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
    row = {**point, metric: metric_value(summary, metric), "student_test_errors": student.get("test_errors"),
           "student_test_accuracy": student.get("test_accuracy"), "train_seconds": student.get("train_seconds")}
    if fixed:
        row |= {"fixed_test_errors": fixed.get("test_errors"), "bias_shift": fixed.get("bias_shift"),
                "omitted_errors_before": student.get("omitted_class_errors"),
                "omitted_errors_after": fixed.get("omitted_class_errors")}  # fmt: skip
    return row


def rows_to_csv(rows: list[dict]) -> str:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def rows_to_markdown(rows: list[dict], title: str) -> str:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    lines = [f"# {title}", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if value < 1 else f"{value:g}"
    return "" if value is None else str(value)


# -- running ------------------------------------------------------------------------------------------------
def _run_point(config: dict, path: str, data_root: str | None, threads: int | None, progress=None) -> dict:
    """One point in this process (or a worker process): an ordinary run directory, trained from scratch
    unless it finished before (an unfinished one is overwritten; its teacher is loaded, so little is lost)."""
    import torch

    from kdedge.pipeline import run_recipe

    if threads:
        torch.set_num_threads(threads)
    recipe = validate_recipe(config, source=path)
    run = RunDir(Path(path)).open_for_writing(force=False)
    try:
        return run_recipe(recipe, run, data_root, progress=progress)
    finally:
        run.release()


def shared_teacher(base: Recipe, sweep_dir: Path, data_root: str | None, progress=None) -> str | None:
    """Path of the teacher weights every point loads: the recipe's teacher.checkpoint, else SWEEP/teacher
    trained once here (kept when a previous, interrupted sweep finished it)."""
    if base.teacher is None:
        return None
    if base.teacher.checkpoint:
        return base.teacher.checkpoint
    teacher_dir = sweep_dir / "teacher"
    if not is_finished(teacher_dir):  # a teacher-only run: the recipe without its student
        _run_point(base.to_dict() | {"student": None, "sweep": None}, str(teacher_dir), data_root, None, progress)
    return str(teacher_dir / "teacher.safetensors")


def run_sweep(base: Recipe, grid: Grid, sweep_dir: Path, data_root: str | None, jobs: int = 1,
              metric: str | None = None, progress=None) -> list[dict]:  # fmt: skip
    """Train the teacher once, then every grid point; write sweep.json/.csv/.md and the heat map.
    Returns the rows, best first."""
    check_grid(grid)
    metric = metric or (base.sweep.metric if base.sweep else "test_errors")
    if jobs < 1:
        raise InputError(f"--jobs must be >= 1 (got {jobs})")
    points = grid_points(grid)
    recipes = [point_recipe(base, point, None) for point in points]  # every point validates before training
    from kdedge.biasfix import check_transfer_set
    from kdedge.pipeline import prepare_data

    num_classes = prepare_data(base, data_root).num_classes  # also: a bad data root fails here, not per point
    for recipe in recipes:
        check_transfer_set(recipe, num_classes)
    teacher = shared_teacher(base, sweep_dir, data_root, progress)
    recipes = [point_recipe(base, point, teacher) for point in points]
    atomic_write_text(sweep_dir / "sweep.json", json.dumps({"recipe": base.name, "grid": grid, "metric": metric,
                                                            "teacher": teacher, "points": len(points)}, indent=2))
    paths = [sweep_dir / "points" / point_name(point) for point in points]
    todo = [i for i, path in enumerate(paths) if not is_finished(path)]
    task = progress.add_task(f"sweep: {len(todo)} of {len(points)} points to run", total=len(todo)) if progress else None
    if jobs == 1:
        for i in todo:
            _run_point(recipes[i].to_dict(), str(paths[i]), data_root, None, progress)
            if task is not None:
                progress.advance(task)
    else:
        _run_parallel([(recipes[i].to_dict(), str(paths[i])) for i in todo], data_root, jobs, progress, task)
    return write_results(sweep_dir, points, paths, metric, base.name)


def _run_parallel(work: list[tuple[dict, str]], data_root: str | None, jobs: int, progress, task) -> None:
    """Points in `jobs` spawned processes, each with its share of the CPU threads."""
    import os

    threads = max(1, (os.cpu_count() or 1) // jobs)
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(_run_point, config, path, data_root, threads) for config, path in work]
        for future in futures:
            future.result()  # a failed point raises here, with its own one-line error
            if task is not None:
                progress.advance(task)


def write_results(sweep_dir: Path, points: list[dict], paths: list[Path], metric: str, name: str) -> list[dict]:
    """sweep.csv, sweep.md and sweep_heatmap.png from the points' summaries (finished ones only)."""
    rows = [point_row(point, RunDir(path).read_summary(), metric)
            for point, path in zip(points, paths, strict=True) if is_finished(path)]  # fmt: skip
    rows = sort_rows(rows, metric)
    atomic_write_text(sweep_dir / "sweep.csv", rows_to_csv(rows))
    atomic_write_text(sweep_dir / "sweep.md", rows_to_markdown(rows, f"sweep of {name}, sorted by {metric}"))
    if rows:
        heatmap_png(sweep_dir, rows, points, metric)
    return rows


def heatmap_png(sweep_dir: Path, rows: list[dict], points: list[dict], metric: str) -> Path:
    """Metric over the first two grid axes (alpha x temperature for the Hinton sweep), axes in grid order;
    with more axes, the best value over the others; with one axis, a single row."""
    import numpy as np

    from kdedge.plots import heatmap

    keys = list(points[0])
    row_key, col_key = (keys[0], keys[1]) if len(keys) > 1 else (None, keys[0])
    row_values = list(dict.fromkeys(p[row_key] for p in points)) if row_key else [""]
    col_values = list(dict.fromkeys(p[col_key] for p in points))
    values = np.full((len(row_values), len(col_values)), np.nan)
    for row in sort_rows(rows, metric)[::-1]:  # best last, so the best over other axes wins
        i = row_values.index(row[row_key]) if row_key else 0
        values[i, col_values.index(row[col_key])] = row[metric]
    title = f"student {metric} (bias-fixed where fixed)" + (", best over other axes" if len(keys) > 2 else "")
    return heatmap(values, [str(v) for v in row_values], [str(v) for v in col_values],
                   sweep_dir / "sweep_heatmap.png", title, row_key or "", col_key)  # fmt: skip


def sweep_command(base: Recipe, grid_items: list[str], sweep_dir: Path, data_root: str | None, jobs: int,
                  quiet: bool, metric: str | None = None) -> list[dict]:  # fmt: skip
    """What `kdedge sweep` (and `kdedge distill` of a recipe with a sweep section) does: the recipe's
    sweep.grid, updated by --grid axes, run into sweep_dir with progress; the table on screen."""
    from rich.table import Table

    from kdedge.console import console, make_progress

    grid = dict(base.sweep.grid) if base.sweep else {}
    grid |= parse_grid(grid_items)
    check_grid(grid)
    if not quiet:
        console.print(f"[bold]{base.name}[/] sweep of {len(grid_points(grid))} points -> {sweep_dir}")
    with make_progress(quiet) as progress:
        rows = run_sweep(base, grid, sweep_dir, data_root, jobs, metric, progress if jobs == 1 else None)
    if not quiet and rows:
        table = Table(title=f"{base.name}: sweep, best first")
        for column in rows[0]:  # 'distillation.temperature' -> 'temperature': the table must fit a terminal
            table.add_column(column.split(".")[-1].replace("student_", "").replace("_", " "), justify="right")
        for row in rows:
            table.add_row(*(_cell(row.get(column)) for column in rows[0]))
        console.print(table)
        console.print(f"sweep directory: {sweep_dir} (sweep.md, sweep.csv, sweep_heatmap.png)")
    return rows
