"""`kdedge check FILE.onnx`: which ONNX-consuming runtimes load the file and agree with onnxruntime on real
test images (kdedge.export.compat), as a table or JSON."""

from __future__ import annotations

import json
from pathlib import Path

from kdedge.export.compat import check_consumers, test_images
from kdedge.ui.console import console


def check_command(path: Path, images: list[Path] | None, limit: int, data_root: str | None, as_json: bool) -> None:
    """Print one row per consumer runtime (onnxruntime, openvino, opencv, tract)."""
    batch, source = test_images(path, images, data_root, limit)
    rows = check_consumers(path, batch)
    if as_json:
        print(json.dumps({"file": str(path), "images": source, "rows": [r.as_dict() for r in rows]}, indent=2))
        return
    from rich.table import Table

    table = Table(title=f"{path.name}: consumers vs onnxruntime on {source}")
    for column in ("runtime", "version", "status", "top-1 agreement", "max |Δ|", "note"):
        table.add_column(column, overflow="fold")
    for row in rows:
        agreement = "-" if row.agreement is None else f"{100 * row.agreement:.1f} %"
        diff = "-" if row.max_abs_diff is None else f"{row.max_abs_diff:.1e}"
        table.add_row(row.runtime, row.version, row.status, agreement, diff, row.note)
    console.print(table)
