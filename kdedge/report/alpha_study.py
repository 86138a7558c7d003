"""The alpha study of a sweep over distillation.alpha (or distillation.hard_weight), in BOTH conventions.

kdedge's alpha weighs the SOFT (teacher) term; a study that weighs the HARD-label term (the original CIFAR-10
AlexNet -> small-CNN study, torchdistill-style code) calls the same run `1 - alpha`. One row per student:
both alphas, what they mean, final train / val / test accuracy read from the point's summary.json and
metrics.jsonl (no data or model is loaded), and one PNG of every student's loss and accuracy per epoch.

Files, next to the sweep's own table: alpha_study.csv, alpha_study.md, alpha_study_curves.png.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml
from rich.table import Table

from kdedge.files.atomic import atomic_write_text
from kdedge.files.rundir import RunDir
from kdedge.report import plots

ALPHA_KEYS = ("distillation.alpha", "distillation.hard_weight")
CSV_NAME, MARKDOWN_NAME, PNG_NAME = "alpha_study.csv", "alpha_study.md", "alpha_study_curves.png"
RUNNING_TRAIN = "running accuracy over the last epoch's batches (model in train mode)"


def is_alpha_sweep(grid_keys: Iterable[str]) -> bool:
    """True when the sweep's grid has an alpha axis in either convention."""
    return any(key in ALPHA_KEYS for key in grid_keys)


def soft_weight(point: dict[str, Any]) -> float:
    """kdedge alpha (teacher-term weight) of a grid point, whichever convention its grid used."""
    if "distillation.hard_weight" in point:
        return 1.0 - float(point["distillation.hard_weight"])
    return float(point["distillation.alpha"])


def meaning(kdedge_alpha: float, loss: str | None = None) -> str:
    """'teacher only' (soft targets only), 'no teacher' (hard labels only) or 'mixed'."""
    if loss == "none" or kdedge_alpha == 0:
        return "no teacher"
    return "teacher only" if kdedge_alpha == 1 else "mixed"


def _loss_name(path: Path, point: dict[str, Any]) -> str | None:
    """distillation.loss of the point (from its grid values, else its recipe.yaml), None when unknown."""
    if "distillation.loss" in point:
        return str(point["distillation.loss"])
    file = path / "recipe.yaml"
    config = yaml.safe_load(file.read_text()) if file.is_file() else None
    return ((config or {}).get("distillation") or {}).get("loss")


def point_row(point: dict[str, Any], path: Path) -> dict[str, Any]:
    """One student: both alphas, the other grid values, final accuracies (fractions; None when absent)."""
    run = RunDir(path)
    summary = run.read_summary()
    student, teacher = summary.get("student") or {}, summary.get("teacher") or {}
    last = next((r for r in reversed(run.read_metrics()) if r.get("stage") == "student"), {})
    alpha = soft_weight(point)
    return {
        "kdedge_alpha": alpha,
        "study_alpha": round(1.0 - alpha, 6),
        "meaning": meaning(alpha, _loss_name(path, point)),
        **{key: value for key, value in point.items() if key not in ALPHA_KEYS},
        "train_accuracy": student.get("train_accuracy", last.get("train_accuracy")),
        "val_accuracy": student.get("val_accuracy", last.get("val_accuracy")),
        "test_accuracy": student.get("test_accuracy", last.get("test_accuracy")),
        "test_errors": student.get("test_errors", last.get("test_errors")),
        "epochs": last.get("epoch"),
        "teacher_test_accuracy": teacher.get("test_accuracy"),
        "teacher_at_chance": teacher.get("teacher_at_chance"),
        "train_accuracy_mode": RUNNING_TRAIN,
        "run": str(path),
    }


def study_rows(points: Sequence[dict[str, Any]], paths: Sequence[Path]) -> list[dict[str, Any]]:
    """Rows of the finished points, in grid order."""
    return [
        point_row(point, Path(path))
        for point, path in zip(points, paths, strict=True)
        if RunDir(path).read_summary().get("finished")
    ]


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}"


def _columns(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(row key, column title): both alphas, meaning, other grid axes, accuracies (val only when measured)."""
    other = [key for key in rows[0] if "." in key]  # the other grid axes, e.g. distillation.temperature
    other += ["seed"] if "seed" in rows[0] else []  # rows of several sweeps (one per seed)
    columns = [
        ("kdedge_alpha", "kdedge alpha (teacher-term weight)"),
        ("study_alpha", "study alpha (hard-label weight)"),
        ("meaning", "meaning"),
        *((key, key.split(".")[-1]) for key in other),
        ("train_accuracy", "train acc %"),
    ]
    if any(row["val_accuracy"] is not None for row in rows):
        columns.append(("val_accuracy", "val acc %"))
    return [*columns, ("test_accuracy", "test acc %")]


def _cell(key: str, value: Any) -> str:
    if key.endswith("_accuracy"):
        return _percent(value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The table alone, one line per student (header first, no title)."""
    columns = _columns(rows)
    rule = "|" + "".join(" :--- |" if key == "meaning" else " ---: |" for key, _ in columns)
    lines = ["| " + " | ".join(title for _, title in columns) + " |", rule]
    lines += ["| " + " | ".join(_cell(key, row.get(key)) for key, _ in columns) + " |" for row in rows]
    return "\n".join(lines)


def notes(rows: list[dict[str, Any]]) -> list[str]:
    """What the columns measure, said under the table."""
    teacher = rows[0]["teacher_test_accuracy"]
    at_chance = any(row.get("teacher_at_chance") for row in rows)
    return [
        "kdedge alpha = weight of the soft (teacher) term; study alpha = 1 - kdedge alpha = weight of the "
        "hard-label term (kdedge alpha 1 = study alpha 0 = teacher only; kdedge 0 = study 1 = no teacher).",
        f"train acc: {rows[0]['train_accuracy_mode']}; val / test acc: the final student in eval mode.",
        f"teacher test accuracy: {_percent(teacher)} %"
        + (" -- WARNING: the teacher is at chance, students learn nothing from it." if at_chance else "."),
    ]


def markdown_section(rows: list[dict[str, Any]], png: str | None, heading: str = "##") -> list[str]:
    """Heading, table, notes and the loss-curve image, as Markdown lines."""
    lines = [f"{heading} Alpha study: both loss conventions", "", markdown_table(rows), ""]
    lines += [f"- {note}" for note in notes(rows)] + [""]
    if png:
        lines += [f"![alpha study loss curves]({png})", ""]
    return lines


def rows_to_csv(rows: list[dict[str, Any]]) -> str:
    """Every row key as a column; accuracies as fractions."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def rich_table(rows: list[dict[str, Any]], title: str) -> Table:
    """The same table for the terminal; the notes go in its caption."""
    table = Table(title=title, caption="\n".join(notes(rows)), caption_justify="left")
    columns = _columns(rows)
    for key, column_title in columns:  # "teacher term" wraps in a narrow terminal, "teacher-term" is cut
        table.add_column(column_title.replace("-", " "), justify="left" if key == "meaning" else "right")
    for row in rows:
        table.add_row(*(_cell(key, row.get(key)) for key, _ in columns))
    return table


def _label(row: dict[str, Any]) -> str:
    other = [f"{key.split('.')[-1]} {_cell(key, value)}" for key, value in row.items() if "." in key or key == "seed"]
    text = f"kdedge α {row['kdedge_alpha']:g} / study α {row['study_alpha']:g} ({row['meaning']})"
    return ", ".join([text, *other])


def loss_curves_png(rows: list[dict[str, Any]], path: Path, title: str) -> Path | None:
    """One PNG: per student (one colour) the train loss and accuracy (solid) and the val loss and accuracy,
    or test when the runs have no val split (dashed), per epoch. None when no student has per-epoch
    records."""
    series = {
        _label(row): [r for r in RunDir(row["run"]).read_metrics() if r.get("stage") == "student"] for row in rows
    }
    series = {label: records for label, records in series.items() if records}
    if not series:
        return None
    heldout = "val" if all("val_loss" in records[0] for records in series.values()) else "test"
    return plots.train_heldout_curves(series, heldout, path, title)


def write_tables(sweep_dir: Path, rows: list[dict[str, Any]]) -> None:
    """alpha_study.csv (run folders relative to the sweep) and alpha_study.md (with the PNG when there)."""
    relative = [row | {"run": os.path.relpath(row["run"], sweep_dir)} for row in rows]  # a movable folder
    atomic_write_text(sweep_dir / CSV_NAME, rows_to_csv(relative))
    png = PNG_NAME if (sweep_dir / PNG_NAME).is_file() else None
    atomic_write_text(sweep_dir / MARKDOWN_NAME, "\n".join(markdown_section(rows, png, "#")))


def write_study(
    sweep_dir: Path, points: Sequence[dict[str, Any]], paths: Sequence[Path], name: str
) -> list[dict[str, Any]]:
    """alpha_study_curves.png, alpha_study.csv and alpha_study.md in sweep_dir; returns the rows
    (nothing written when no point has finished)."""
    rows = study_rows(points, paths)
    if rows:
        loss_curves_png(rows, sweep_dir / PNG_NAME, f"{name}: students' loss and accuracy per epoch")
        write_tables(sweep_dir, rows)
    return rows
