"""Shared rich output helpers (tables, progress) for the CLI and the reports; no logic."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

console = Console()
error_console = Console(stderr=True)


def warn(text: str) -> None:
    """One 'warning: ...' line on stderr: something was handled (a stale lock, a corrupt cache) and the
    command goes on."""
    error_console.print(f"warning: {text}", markup=False, highlight=False, soft_wrap=True)


def make_progress(quiet: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TimeRemainingColumn(), console=console, disable=quiet,
    )  # fmt: skip


def summary_table(summary: dict, title: str) -> Table:
    """Teacher / student rows of a run's summary.json."""
    table = Table(title=title)
    for column in ("stage", "model", "params", "test acc %", "test errors", "QWK", "train s"):
        table.add_column(column, justify="left" if column in ("stage", "model") else "right")
    for stage in ("teacher", "student", "student_bias_fixed"):
        row = summary.get(stage)
        if not row:
            continue
        table.add_row(stage, row["model"], f"{row['params']:,}", f"{100 * row['test_accuracy']:.2f}",
                      f"{row['test_errors']} / {row['test_count']}",
                      f"{row.get('test_qwk', float('nan')):.3f}",
                      f"{row.get('train_seconds', 0):.1f}")  # fmt: skip
    return table
