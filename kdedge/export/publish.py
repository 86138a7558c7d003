"""What an exported file says about itself (kdedge.* metadata, see kdedge.runtime.onnx_meta) and how a checked
file is moved into RUN/export: stamped, then written atomically, so a reader never sees half a file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import onnx
import torch

from kdedge.data.images import DEFAULT_RESIZE
from kdedge.export.nncf_int8 import activation_scheme, nncf_version
from kdedge.export.options import Settings
from kdedge.export.table import ExportRow
from kdedge.files.atomic import atomic_write
from kdedge.recipe import Recipe
from kdedge.runtime.onnx_meta import build_metadata, set_metadata


def stage_metadata(
    recipe: Recipe, stage: str, info: dict[str, Any], chw: tuple[int, int, int], settings: Settings
) -> dict[str, Any]:
    """What every file of one stage shares: the model, its input (chw: C, H, W) and normalisation, the
    data set and class names, the recipe's fingerprint and how the file was exported."""
    return {
        "model": getattr(recipe, stage).model,
        "stage": stage,
        "input_size": chw[1:],
        "in_channels": chw[0],
        "mean": info["mean"],
        "std": info["std"],
        "class_names": info["class_names"],
        "dataset": info["dataset"],
        "resize": recipe.data.resize or DEFAULT_RESIZE.get(recipe.data.name),  # predict repeats it
        "recipe_sha": recipe.fingerprint(),
        "opset": settings.opset,
        "exporter": "torch.onnx dynamo",
        "torch_version": torch.__version__,
    }


def file_metadata(
    stage_meta: dict[str, Any], row: ExportRow, built: Path, settings: Settings, calibration_images: int
) -> dict[str, Any]:
    """stage_meta plus what was measured on this file (`row`, which passed its checks); for int8, how the
    file `built` was quantised."""
    meta = stage_meta | {
        "precision": row.precision,
        "test_accuracy": round(row.test_accuracy, 6),
        "test_count": row.test_count,
        "top1_agreement_fp32": round(row.test_agreement, 6),
        "max_abs_diff_torch": f"{row.max_abs_diff:.3e}",
        "max_abs_diff_fp32_test": f"{row.test_max_abs_diff:.3e}",
    }
    if row.precision == "int8":
        meta |= int8_metadata(settings, calibration_images, built)
    if "int8_rescue" in row.extra:  # kept fp32 nodes / percentile ranges (kdedge.export.int8_rescue)
        meta["int8_rescue"] = row.extra["int8_rescue"]
    return meta


def int8_metadata(settings: Settings, calibration_images: int, built: Path) -> dict[str, Any]:
    """How an int8 file was made: quantiser and its version, activation/weight types, calibration size."""
    if settings.int8_method == "nncf":
        method, version, scheme = "nncf", nncf_version(), activation_scheme(built)
    else:
        import onnxruntime

        method, version, scheme = "ort", onnxruntime.__version__, settings.int8_scheme
    return {
        "int8_method": method,
        "int8_quantizer": f"{'nncf' if method == 'nncf' else 'onnxruntime'} {version}",
        "int8_scheme": scheme,
        "calibration_images": calibration_images,
    }


def publish(built: Path, out_dir: Path, meta_values: dict[str, Any]) -> Path:
    """Stamp the metadata and move the checked file into out_dir (RUN/export) atomically."""
    model = onnx.load(str(built))
    set_metadata(model, build_metadata(meta_values))
    final = out_dir / built.name
    atomic_write(final, lambda tmp: onnx.save(model, str(tmp)))
    return final
