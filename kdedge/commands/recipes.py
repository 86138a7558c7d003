"""`kdedge recipes` (one line per packaged recipe) and `kdedge recipes show NAME` (the YAML itself)."""

from __future__ import annotations

import json

from kdedge.recipe import find_recipe, packaged_recipes, read_yaml
from kdedge.ui.console import console


def list_command(as_json: bool) -> None:
    """Name and the first line of the description of each packaged recipe, or all as JSON."""
    rows = {name: read_yaml(path).get("description", "") for name, path in sorted(packaged_recipes().items())}
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    for name, description in rows.items():
        first_line = description.strip().splitlines()[0] if description else ""
        console.print(f"[bold]{name:<32}[/] {first_line}", soft_wrap=True)  # one line each, also in a pipe


def show_command(name: str) -> None:
    """Print a recipe file so it can be copied and edited."""
    print(find_recipe(name).read_text(), end="")
