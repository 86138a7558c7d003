"""`kdedge formats`: the export-format table (kdedge.runtime.formats) with what is installed here."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from kdedge.runtime.formats import table_rows
from kdedge.ui.console import print_table, table_width
from kdedge.ui.tables import Column, fitted_table

if TYPE_CHECKING:
    from rich.table import Table

# What a newcomer asks first (which name, which file, which precisions, does it run here) stays; the long
# settings and notes go first when the terminal is narrow (--wide or --json keeps them).
COLUMNS = {
    "format": Column("format", key=True, left=True),
    "suffix": Column("suffix", left=True),
    "precisions": Column("precisions", left=True),
    "runtimes": Column("runtimes", drop=6, left=True),
    "devices": Column("devices", drop=3, left=True),
    "batch": Column("batch", drop=4, left=True),
    "metadata": Column("metadata", drop=2, left=True),
    "extra": Column("extra", drop=5, left=True),
    "convert here": Column("convert here", drop=7, left=True, wrap=24),
    "run here": Column("run here", left=True, wrap=24),
    "runtime settings": Column("runtime settings", drop=1, left=True),
    "note": Column("note", drop=1, left=True),
}
TITLE = "kdedge export --format NAME (bench runs every format whose runtime is installed)"


def formats_table(rows: list[dict[str, str]], width: int, wide: bool = False) -> Table:
    """The table_rows() dicts as a table that fits `width` characters (unless `wide`)."""
    columns = [COLUMNS.get(name, Column(name, drop=1, left=True)) for name in rows[0]]
    cells = [list(row.values()) for row in rows]
    return fitted_table(TITLE, columns, cells, width, wide, more="--wide")


def formats_command(as_json: bool, wide: bool = False) -> None:
    """Print one row per format (suffix, precisions, runtimes, batch, metadata, extras, installed?)."""
    rows = table_rows()
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    width = table_width()
    print_table(formats_table(rows, width, wide), width)
