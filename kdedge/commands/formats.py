"""`kdedge formats`: the export-format table (kdedge.runtime.formats) with what is installed here."""

from __future__ import annotations

import json

from kdedge.runtime.formats import table_rows
from kdedge.ui.console import console


def formats_command(as_json: bool) -> None:
    """Print one row per format (suffix, precisions, runtimes, batch, metadata, extras, installed?)."""
    rows = table_rows()
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    from rich.table import Table

    table = Table(title="kdedge export --format NAME (bench runs every format whose runtime is installed)")
    for column in rows[0]:
        table.add_column(column)
    for row in rows:
        table.add_row(*row.values())
    console.print(table)
