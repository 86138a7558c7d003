"""Result tables as Markdown: one JSON file per table (written by the command that measured it: `kdedge
study`, `kdedge bench`, `kdedge search`, or a script in bench/), rendered into a section each; the results
page (docs/results.md) and README's "Results at a glance" are these sections and headlines in order.

A table file: {"title": str, "experiment": str (recipe, command or script), "order": int (position in the
page), "headline": str (README's one line), "date": "YYYY-MM-DD", "machine": str, "commands": [str, ...]
(exactly what was run; the first regenerates the table), "source": str (where the raw output is),
"columns": [str, ...], "rows": [[cell, ...], ...], "notes": [str, ...] (optional)}; any other keys (a
command's raw per-run data) are kept and ignored here.

Standard library only: the page is rebuilt and checked without torch.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

REQUIRED = {
    "title": str,
    "experiment": str,
    "order": int,
    "headline": str,
    "date": str,
    "machine": str,
    "commands": list,
    "source": str,
    "columns": list,
    "rows": list,
}


class TableFileError(ValueError):
    """A result file that claims to be a table (title, columns, rows) but breaks the format."""


def is_table(data: object) -> bool:
    return isinstance(data, dict) and {"title", "columns", "rows"} <= set(data)


def check_table(data: dict, name: str) -> None:
    """Required keys of the right type, and every row as wide as the columns."""
    for key, kind in REQUIRED.items():
        if not isinstance(data.get(key), kind):
            raise TableFileError(f"{name}: '{key}' must be a {kind.__name__}")
    for row in data["rows"]:
        if len(row) != len(data["columns"]):
            raise TableFileError(f"{name}: row {row} has {len(row)} cells, not {len(data['columns'])}")


def load_results(folder: Path) -> tuple[list[dict], list[str]]:
    """(tables, raw): the result files in the table format (checked), sorted by (order, file name), each with
    its file stem as "id"; and the names of the other JSON files there (a script's raw output, listed)."""
    return tables_of({path.name: json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))})


def tables_of(files: Mapping[str, Any]) -> tuple[list[dict], list[str]]:
    """load_results of result files already read (file name -> content)."""
    results, raw = [], []
    for name in sorted(files):
        data = files[name]
        if not is_table(data):
            raw.append(name)
            continue
        check_table(data, name)
        results.append(data | {"id": name.removesuffix(".json")})
    return sorted(results, key=lambda r: (r["order"], r["id"])), raw


def cell(value: object) -> str:
    """A table cell: thousands separators for ints, '-' for missing values."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    return str(value).replace("|", "\\|")


def table(columns: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return lines + ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]


def section(result: dict) -> list[str]:
    """One table's section: anchor, title, headline, where and how it was measured, the table, notes."""
    lines = [
        f'<a id="{result["id"]}"></a>',
        f"## {result['title']}",
        "",
        f"{result['headline']}.",
        "",
        f"Experiment: `{result['experiment']}`. Measured {result['date']} on {result['machine']}.",
        "",
        "```text",
        *result["commands"],
        "```",
        "",
        *table(result["columns"], result["rows"]),
        "",
    ]
    lines += [f"- {note}" for note in result.get("notes", [])]
    return lines + ([""] if result.get("notes") else []) + [f"Source: {result['source']}.", ""]


def page(intro: str, results: list[dict], raw: list[str]) -> str:
    """The whole results page: intro, contents, a section per table, then the raw files listed."""
    body = [intro, "## Contents", ""] + [f"- [{r['title']}](#{r['id']})" for r in results] + [""]
    for result in results:
        body += section(result)
    if raw:
        body += ["## Raw result files", "", "Written by benchmark scripts, not (yet) in the table format above:", ""]
        body += [f"- [bench/results/{name}](../bench/results/{name})" for name in raw] + [""]
    return "\n".join(body).rstrip() + "\n"


def glance(results: list[dict], begin: str, end: str) -> str:
    """README's table: one row per result, linking to its section of docs/results.md."""
    rows = [[f"`{r['experiment']}`", f"[{r['headline']}](docs/results.md#{r['id']})"] for r in results]
    return "\n".join([begin, *table(["experiment", "headline (details, command, machine)"], rows), end])
