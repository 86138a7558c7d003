"""Result tables that fit the terminal by choosing columns, never by truncating the ones that tell rows apart.

A table is a list of `Column`s and rows of already formatted cells. `fitted_table` drops columns that are
empty in every row, then, while the table is wider than the terminal, the least important column left
(highest `drop` rank); key columns (the model / file / stage that names a row) are never dropped and
never wrapped or cut. The caption says which columns were hidden and how to see them (`--wide`, JSON).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.table import Table

EMPTY = ("", "-")


@dataclass(frozen=True)
class Column:
    """One column: its header (units in it: "p50 ms"), whether it names the row, and when to hide it.

    drop: rank in which columns are hidden when the table is too wide (1 first, 2 next, ...); 0 = never.
    wrap: a cell longer than this many characters wraps onto more lines (and counts as this wide when
    columns are chosen), so one long cell does not hide the other columns; 0 = never wrapped on purpose.
    """

    header: str
    key: bool = False
    drop: int = 0
    left: bool = False
    wrap: int = 0


def si(value: float | None, unit: str = "") -> str:
    """49_000 -> '49k', 1.2e9 -> '1.2G': tiny and large models in one column, never '0.0'."""
    if value is None:
        return "-"
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{prefix}{unit}"
    return f"{value:.3g}{unit}"


def table_width(columns: Sequence[Column], rows: Sequence[Sequence[str]]) -> int:
    """Characters rich needs for these columns unwrapped: each cell + 2 padding + 1 border, + 1 edge."""
    widths = [max([len(c.header), *(len(r[i]) for r in rows)]) for i, c in enumerate(columns)]
    widths = [min(w, max(c.wrap, len(c.header))) if c.wrap else w for w, c in zip(widths, columns, strict=True)]
    return sum(w + 3 for w in widths) + 1


def choose_columns(
    columns: Sequence[Column], rows: Sequence[Sequence[str]], width: int, wide: bool = False
) -> tuple[list[int], list[str]]:
    """(indices of the columns to show, headers of the non-empty columns hidden to fit `width`)."""
    shown = [i for i, c in enumerate(columns) if c.key or any(r[i] not in EMPTY for r in rows)]
    hidden: list[str] = []
    if wide:
        return shown, hidden
    while table_width([columns[i] for i in shown], [[r[i] for i in shown] for r in rows]) > width:
        droppable = [i for i in shown if columns[i].drop > 0 and not columns[i].key]
        if not droppable:
            break
        victim = min(droppable, key=lambda i: (columns[i].drop, -i))  # lowest rank, rightmost first
        shown.remove(victim)
        hidden.append(columns[victim].header)
    return shown, hidden


def fitted_table(
    title: str,
    columns: Sequence[Column],
    rows: Sequence[Sequence[str]],
    width: int,
    wide: bool = False,
    caption: str = "",
    styles: Sequence[str | None] | None = None,
    more: str = "--wide or --json",
) -> Table:
    """A rich Table of `rows` that fits `width` characters (unless `wide`); see the module docstring."""
    shown, hidden = choose_columns(columns, rows, width, wide)
    notes = [caption] if caption else []
    if hidden:
        notes.append(f"hidden to fit {width} columns: {', '.join(reversed(hidden))} ({more} shows them)")
    table = Table(title=title, caption="\n".join(notes) or None, caption_justify="left")
    unwrapped = [Column(columns[i].header) for i in shown]  # `wrap` only where the whole cells do not fit
    wrap = not wide and table_width(unwrapped, [[r[i] for i in shown] for r in rows]) > width
    for i in shown:
        column = columns[i]
        longest = max([len(column.header), *(len(r[i]) for r in rows)])
        table.add_column(
            column.header,
            justify="left" if column.left else "right",
            no_wrap=column.key,
            min_width=longest if column.key else None,
            max_width=max(column.wrap, len(column.header)) if column.wrap and wrap else None,
        )
    for index, row in enumerate(rows):
        table.add_row(*(row[i] for i in shown), style=styles[index] if styles else None)
    return table
