"""`kdedge check FILE.onnx`: which ONNX-consuming runtimes load the file and agree with onnxruntime on real
test images (kdedge.export.compat), as a table or JSON."""

from __future__ import annotations

import json
from typing import Any

from kdedge.commands.options import CheckOptions
from kdedge.export.compat import check_consumers, test_images
from kdedge.ui.console import console


def check_results(options: CheckOptions) -> dict[str, Any]:
    """{'file', 'images' (where they came from), 'rows': one dict per consumer runtime}."""
    batch, source = test_images(options.model, list(options.images), options.data_root, options.limit)
    rows = check_consumers(options.model, batch)
    return {"file": str(options.model), "images": source, "rows": [row.as_dict() for row in rows]}


def check_command(options: CheckOptions) -> None:
    """Print one row per consumer runtime (onnxruntime, openvino, opencv, tract)."""
    result = check_results(options)
    if options.as_json:
        print(json.dumps(result, indent=2))
        return
    from rich.table import Table

    table = Table(title=f"{options.model.name}: consumers vs onnxruntime on {result['images']}")
    for column in ("runtime", "version", "status", "top-1 agreement", "max |Δ|", "note"):
        table.add_column(column, overflow="fold")
    for row in result["rows"]:
        agreement = "-" if row["agreement"] is None else f"{100 * row['agreement']:.1f} %"
        diff = "-" if row["max_abs_diff"] is None else f"{row['max_abs_diff']:.1e}"
        table.add_row(row["runtime"], row["version"], row["status"], agreement, diff, row["note"])
    console.print(table)
