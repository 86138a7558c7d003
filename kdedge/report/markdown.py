"""`kdedge report RUN_OR_SWEEP_DIR`: a Markdown page (report.md) with the tables and PNGs of a run or sweep.

Run:   summary table (teacher, student, bias-fixed student), learning curves per stage (metrics.jsonl),
       test confusion matrices (summary.json's test_confusion; no data or model is loaded).
Sweep: the sweep table (best first), the heat map, the teacher's curves, every point's test errors per epoch;
       over an alpha grid also the alpha study (both loss conventions, experiments.alpha_study), also on
       screen.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from kdedge.errors import InputError
from kdedge.files.atomic import atomic_write_text
from kdedge.files.rundir import RunDir
from kdedge.recipe.grid import grid_points, point_name
from kdedge.report import alpha_study, plots

STAGES = ("teacher", "student", "student_bias_fixed")
SUMMARY_COLUMNS = (
    "stage",
    "model",
    "params",
    "test acc %",
    "test errors",
    "omitted-class errors",
    "bias shift",
    "train s",
)


def write_report(path: Path, show: bool = True) -> Path:
    """Write PATH/report.md (and its PNGs next to it); returns the report's path. With `show`, tables that
    exist only in the report (the alpha study's) are printed too."""
    path = Path(path)
    if (path / "sweep.json").is_file():
        lines = sweep_section(path, show)
    elif (path / "summary.json").is_file():
        lines = run_section(path, RunDir(path).read_summary().get("data", {}).get("dataset", ""))
    else:
        raise InputError(f"{path} is neither a run directory (summary.json) nor a sweep directory (sweep.json)")
    report = path / "report.md"
    atomic_write_text(report, "\n".join(lines) + "\n")
    return report


def _summary_cells(stage: str, row: dict) -> dict[str, str]:
    """One stage's cells by column heading ("" where the run has no such figure)."""
    omitted = (
        f"{row['omitted_class_errors']} / {row['omitted_class_count']} (classes {row['omitted_classes']})"
        if "omitted_class_errors" in row
        else ""
    )
    return {
        "stage": stage,
        "model": row["model"],
        "params": f"{row['params']:,}",
        "test acc %": f"{100 * row['test_accuracy']:.2f}",
        "test errors": f"{row['test_errors']} / {row['test_count']}",
        "omitted-class errors": omitted,
        "bias shift": str(row.get("bias_shift", "")),
        "train s": str(row.get("train_seconds", "")),
    }


def summary_rows(summary: dict) -> list[str]:
    """Markdown table of the run's stages; a column empty in every row (omitted-class errors and bias shift
    outside the bias-fix experiments) is left out."""
    rows = [_summary_cells(stage, summary[stage]) for stage in STAGES if summary.get(stage)]
    columns = [c for c in SUMMARY_COLUMNS if not rows or any(r[c] for r in rows)]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return lines + ["| " + " | ".join(r[c] for c in columns) + " |" for r in rows]


def run_section(path: Path, title: str, heading: str = "#") -> list[str]:
    """Markdown for one run: table, learning curves, confusion matrices (PNG files written into the run)."""
    run = RunDir(path)
    summary, records = run.read_summary(), run.read_metrics()
    lines = [f"{heading} {path.name}: {title}", "", *summary_rows(summary), ""]
    for stage in ("teacher", "student"):
        stage_records = [r for r in records if r.get("stage") == stage]
        if stage_records:
            png = plots.learning_curves(stage_records, path / f"{stage}_curves.png", f"{path.name}: {stage}")
            lines += [f"{heading}# {stage}: learning curves", "", f"![{stage} curves]({png.name})", ""]
    names = summary.get("data", {}).get("class_names") or []
    for stage in STAGES:
        matrix = (summary.get(stage) or {}).get("test_confusion")
        if matrix is None:
            continue
        matrix = np.asarray(matrix)
        labels = [str(n) for n in names] if len(names) == len(matrix) else [str(i) for i in range(len(matrix))]
        png = plots.confusion_matrix(
            matrix,
            labels,
            path / f"{stage}_confusion.png",
            f"{stage}: test confusion ({int(matrix.sum() - np.trace(matrix))} errors)",
        )
        lines += [
            f"{heading}# {stage}: test confusion matrix (rows true, columns predicted)",
            "",
            f"![{stage} confusion]({png.name})",
            "",
        ]
    return lines


def sweep_points(path: Path, grid: dict[str, list]) -> tuple[list[dict], list[Path]]:
    """The grid's points, in grid order, and their run directories under PATH/points."""
    points = grid_points(grid)
    return points, [path / "points" / point_name(point) for point in points]


def alpha_section(path: Path, meta: dict, show: bool) -> list[str]:
    """The alpha study of an alpha sweep (files rewritten from the points), as Markdown; [] otherwise."""
    if not alpha_study.is_alpha_sweep(meta["grid"]):
        return []
    rows = alpha_study.write_study(path, *sweep_points(path, meta["grid"]), meta["recipe"])
    if not rows:
        return []
    if show:
        from kdedge.ui.console import console

        console.print(alpha_study.rich_table(rows, f"{meta['recipe']}: alpha study (both conventions)"))
    png = alpha_study.PNG_NAME if (path / alpha_study.PNG_NAME).is_file() else None
    return alpha_study.markdown_section(rows, png) + [
        f"Table as CSV: [{alpha_study.CSV_NAME}]({alpha_study.CSV_NAME})",
        "",
    ]


def sweep_section(path: Path, show: bool = False) -> list[str]:
    """Markdown for a sweep directory: its table and heat map, the alpha study of an alpha grid, the
    teacher, the points' test curves."""
    meta = json.loads((path / "sweep.json").read_text())
    table = (path / "sweep.md").read_text().splitlines()[1:] if (path / "sweep.md").is_file() else []
    lines = [
        f"# Sweep of {meta['recipe']} ({meta['points']} points, metric {meta['metric']})",
        "",
        f"Grid: `{json.dumps(meta['grid'])}`; teacher weights: `{meta['teacher']}`",
        *table,
        "",
        *alpha_section(path, meta, show),
    ]
    if (path / "sweep_heatmap.png").is_file():
        lines += ["## Heat map", "", "![heat map](sweep_heatmap.png)", ""]
    records = {p.name: RunDir(p).read_metrics() for p in sorted((path / "points").glob("*"))}
    for key, label in (
        ("test_errors", "test errors"),
        ("test_loss", "test loss (CE)"),
        ("train_loss", "train loss"),
    ):
        series = {
            name: ([r["epoch"] for r in rows], [r[key] for r in rows])
            for name, point_records in records.items()
            if (rows := [r for r in point_records if r.get("stage") == "student" and key in r])
        }
        if series:  # one curve per point: the alpha study's loss curves, the sweep's convergence
            plots.curves(series, path / f"points_{key}.png", f"students: {label} per epoch", ylabel=label)
            lines += [f"## Students: {label} per epoch", "", f"![{key}](points_{key}.png)", ""]
    if (path / "teacher" / "summary.json").is_file():
        lines += [
            line.replace("](", "](teacher/") if line.startswith("![") else line
            for line in run_section(path / "teacher", "the shared teacher", "##")
        ]
    return lines
