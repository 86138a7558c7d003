"""`kdedge recipes` (one line per packaged recipe) and `kdedge recipes show NAME` (the YAML itself)."""

from __future__ import annotations

import json
import re

from kdedge.recipe import find_recipe, packaged_recipes, read_yaml
from kdedge.ui.console import console, table_width

MIN_SUMMARY = 20  # characters of description kept however narrow the terminal


def list_command(as_json: bool) -> None:
    """Name and the first sentence of the description of each packaged recipe (cut to the terminal's width),
    or all as JSON."""
    from rich.text import Text

    rows = {name: read_yaml(path).get("description", "") for name, path in sorted(packaged_recipes().items())}
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    name_width = max(map(len, rows), default=0)
    for name, summary in recipe_lines(rows, table_width()):
        # one line each, also in a pipe; Text, not markup: a description's [brackets] print as written
        console.print(Text.assemble((f"{name:<{name_width}}", "bold"), f" {summary}"), soft_wrap=True, highlight=False)


def recipe_lines(rows: dict[str, str], width: int) -> list[tuple[str, str]]:
    """(name, first sentence of its description cut with '…' so that `name summary` fits `width`)."""
    name_width = max(map(len, rows), default=0)
    room = max(width - name_width - 1, MIN_SUMMARY)
    lines = []
    for name, description in rows.items():
        summary = first_sentence(str(description or ""))
        if len(summary) > room:
            summary = summary[: room - 1].rstrip() + "…"
        lines.append((name, summary))
    return lines


def first_sentence(text: str) -> str:
    """The text on one line up to its first full stop followed by a capital ('A. B' -> 'A.')."""
    flat = " ".join(text.split())
    return re.split(r"(?<=\.)\s+(?=[A-Z])", flat, maxsplit=1)[0]


def show_command(name: str) -> None:
    """Print a recipe file so it can be copied and edited."""
    print(find_recipe(name).read_text(), end="")
