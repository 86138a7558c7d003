"""Shared rich output helpers (tables, progress) for the CLI and the reports; no logic."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from rich.progress import Progress

console = Console()
error_console = Console(stderr=True)


def table_width() -> int:
    """Characters a result table may use: the terminal's width (or $COLUMNS); 200 in a pipe or log file,
    where nobody's screen wraps it. Tables choose their columns to fit it (kdedge.ui.tables)."""
    if console.is_terminal or os.environ.get("COLUMNS"):
        return console.width
    return 200


def print_table(table: Table, width: int) -> None:
    """Print a table built for `width` characters (a pipe's console would otherwise squash it to 80)."""
    (console if width == console.width else Console(width=width)).print(table)


def one_line(text: str) -> str:
    """`text` with control characters escaped (a newline or terminal escape inside a user's value or a
    file name stays visible and harmless: the message stays one line and cannot drive the terminal)."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def say(text: str) -> None:
    """Print one line on stderr, as is (no rich markup), never wrapped, control characters escaped."""
    error_console.print(one_line(text), markup=False, highlight=False, soft_wrap=True)


def warn(text: str) -> None:
    """One 'warning: ...' line on stderr: something was handled (a stale lock, a corrupt cache) and the
    command goes on."""
    say(f"warning: {text}")


def make_progress(quiet: bool) -> Progress:
    # imported here: commands that show no progress (--help, recipes, completion) start without it
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=quiet,
    )


ORDINAL_DATASETS = ("aptos", "retinamnist")  # name prefixes of data sets of ordered grades: QWK means something


def is_ordinal(dataset: str) -> bool:
    """Are the classes of this data set ordered grades (diabetic retinopathy 0-4), so that QWK is meaningful?"""
    return str(dataset).startswith(ORDINAL_DATASETS)


def summary_table(summary: dict, title: str, width: int = 200) -> Table:
    """Teacher / student rows of a run's summary.json (or of `kdedge eval`). QWK only for ordinal data
    sets; training seconds only where this summary trained the stage (eval re-scores, trains nothing)."""
    from kdedge.ui.tables import Column, fitted_table, si

    ordinal = is_ordinal(summary.get("data", {}).get("dataset", ""))
    columns = (
        Column("stage", key=True, left=True),
        Column("model", key=True, left=True),
        Column("params"),
        Column("acc %"),
        Column("errors"),
        Column("QWK", drop=2),
        Column("train s", drop=1),
    )
    rows = []
    for stage in ("teacher", "student", "student_bias_fixed"):
        row = summary.get(stage)
        if not row:
            continue
        qwk, seconds = row.get("test_qwk"), row.get("train_seconds")
        rows.append(
            [
                stage,
                row["model"],
                si(row["params"]),
                f"{100 * row['test_accuracy']:.2f}",
                f"{row['test_errors']}/{row['test_count']}",
                f"{qwk:.3f}" if ordinal and qwk is not None else "-",
                f"{seconds:.1f}" if seconds else "-",
            ]
        )
    return fitted_table(title, columns, rows, width)
