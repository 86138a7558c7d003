"""`kdedge layers RECIPE`: the layer names of the recipe's teacher and student, with each layer's type and
output shape per image, to choose distillation.features pairs from (docs/guide.md, Feature methods)."""

from __future__ import annotations

import json
from typing import Any

from kdedge.recipe import load_recipe, parse_set
from kdedge.ui.console import console


def layers_command(recipe_name: str, overrides: list[str], data_root: str | None, as_json: bool) -> dict[str, Any]:
    """{stage: [{name, type, shape}, ...]} for the recipe's teacher and student (built without pretrained
    weights; shapes from one pass on the first training images), printed as a table or JSON."""
    recipe = load_recipe(recipe_name, parse_set(overrides))  # a typo: said before torch loads
    from kdedge.data.types import normalize
    from kdedge.files.rundir import data_info
    from kdedge.models.weights import build_stage_model
    from kdedge.train.features import layer_shapes
    from kdedge.train.pipeline import prepare_data

    bundle = prepare_data(recipe, data_root)
    inputs = normalize(bundle.train.images[:2], bundle.mean, bundle.std)
    tables = {}
    for stage in ("teacher", "student"):
        cfg = getattr(recipe, stage)
        if cfg is not None:
            model = build_stage_model(
                cfg.model_copy(update={"pretrained": False, "checkpoint": None}), data_info(bundle)
            )
            rows = layer_shapes(model, inputs)
            tables[stage] = [{"name": name, "type": kind, "shape": list(shape)} for name, kind, shape in rows]
    if as_json:
        print(json.dumps(tables, indent=2))
    else:
        _print(tables)
    return tables


def _print(tables: dict[str, list[dict]]) -> None:
    """One block per model: name, type and shape per image, one layer a line."""
    for stage, rows in tables.items():
        console.print(f"[bold]{stage}[/]  (distillation.features: {{{stage}: NAME}})")
        width = max((len(row["name"]) for row in rows), default=4)
        for row in rows:
            shape = "x".join(map(str, row["shape"])) or "-"
            console.print(f"  {row['name']:<{width}}  {row['type']:<20} {shape}", markup=False, highlight=False)
