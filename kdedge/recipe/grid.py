"""A sweep's grid (the recipe's sweep.grid): its points and the folder name of each. Read by the sweep that
trains them (kdedge.experiments.sweep) and by the reports that read their folders back (kdedge.report)."""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

Grid = dict[str, list[Any]]


def grid_points(grid: Grid) -> list[dict[str, Any]]:
    """Cartesian product, in grid order: [{key: value, ...}, ...]."""
    keys = list(grid)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*grid.values())]


def point_name(point: dict[str, Any]) -> str:
    """'distillation.alpha=0.5,distillation.temperature=4': a folder name (odd characters become '_')."""
    text = ",".join(f"{key}={json.dumps(value) if isinstance(value, list) else value}" for key, value in point.items())
    return re.sub(r"[^A-Za-z0-9._=,+-]", "_", text)
