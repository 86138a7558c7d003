"""`kdedge predict MODEL.onnx IMAGES...`: top-k classes per image, as lines or JSON (never imports torch)."""

from __future__ import annotations

import json
from pathlib import Path

from kdedge.runtime.predict import predict_images, resolve_model
from kdedge.ui.console import error_console


def predict_command(model: Path, images: list[Path], top_k: int, as_json: bool) -> None:
    """Print `image: class p%, ...` per image, or all results as JSON. MODEL may be a run directory."""
    results = predict_images(model, images, top_k)
    if model.is_dir():  # say which file of the run answered (stderr: stdout stays one line per image)
        error_console.print(f"model: {resolve_model(model)}", markup=False, highlight=False, soft_wrap=True)
    if as_json:
        print(json.dumps(results, indent=2))
        return
    for result in results:
        classes = ", ".join(f"{t['class']} {100 * t['probability']:.1f}%" for t in result["top"])
        print(f"{result['image']}: {classes}")
