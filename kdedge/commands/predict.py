"""`kdedge predict MODEL.onnx IMAGES...`: top-k classes per image, as lines or JSON (never imports torch)."""

from __future__ import annotations

import json

from kdedge.commands.options import PredictOptions
from kdedge.runtime.predict import predict_images, resolve_model
from kdedge.ui.console import error_console


def predict_results(options: PredictOptions) -> list[dict]:
    """[{'image', 'top': [{'class', 'index', 'probability'}, ...]}, ...] (kdedge.runtime.predict), unprinted."""
    return predict_images(options.model, list(options.images), options.top_k)


def predict_command(options: PredictOptions) -> list[dict]:
    """Print `image: class p%, ...` per image, or all results as JSON; MODEL may be a run directory.
    Returns the results."""
    results = predict_results(options)
    if options.model.is_dir():  # say which file of the run answered (stderr: stdout stays one line per image)
        error_console.print(f"model: {resolve_model(options.model)}", markup=False, highlight=False, soft_wrap=True)
    if options.as_json:
        print(json.dumps(results, indent=2))
        return results
    for result in results:
        classes = ", ".join(f"{t['class']} {100 * t['probability']:.1f}%" for t in result["top"])
        print(f"{result['image']}: {classes}")
    return results
