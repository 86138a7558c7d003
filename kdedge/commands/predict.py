"""`kdedge predict MODEL.onnx IMAGES...`: top-k classes per image, as lines or JSON (never imports torch)."""

from __future__ import annotations

import json

from kdedge.commands.options import PredictOptions
from kdedge.runtime.predict import Predictions, predict_images, resolve_model, skipped_line
from kdedge.ui.console import say


def predict_results(options: PredictOptions) -> Predictions:
    """[{'image', 'top': [{'class', 'index', 'probability'}, ...]}, ...] (kdedge.runtime.predict), unprinted;
    with skip_bad_images, result.skipped lists the images left out ([{'image', 'error'}, ...])."""
    return predict_images(options.model, list(options.images), options.top_k, skip_bad=options.skip_bad_images)


def predict_command(options: PredictOptions) -> Predictions:
    """Print `image: class p%, ...` per image, or all results as JSON; MODEL may be a run directory; images
    left out by --skip-bad-images are one warning line on stderr. Returns the results."""
    results = predict_results(options)
    if options.model.is_dir():  # say which file of the run answered (stderr: stdout stays one line per image)
        say(f"model: {resolve_model(options.model)}")
    if results.skipped:
        say(f"warning: {skipped_line(results.skipped, len(results) + len(results.skipped))}")
    if options.as_json:
        print(json.dumps(results, indent=2))
        return results
    for result in results:
        classes = ", ".join(f"{t['class']} {100 * t['probability']:.1f}%" for t in result["top"])
        print(f"{result['image']}: {classes}")
    return results
