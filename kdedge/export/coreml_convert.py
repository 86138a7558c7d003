"""PyTorch -> Core ML `.mlpackage` (ML Program) with coremltools (kdedge-distill[coreml]).

Converts on Linux; running needs macOS, so the file's check here is structural (coreml_check): the spec
loads, one (N, C, H, W) input with a dynamic batch range, one output, and the kdedge metadata in the
model's user-defined metadata. fp32 / fp16 are the ML Program's compute precision.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from kdedge.errors import RuntimeFailure
from kdedge.export.edge_common import TRACE_BATCH, ConvertJob, converter_errors
from kdedge.runtime.edge_meta import coremltools

MAX_BATCH = 1024


def convert(job: ConvertJob) -> None:
    """Write job.path (a folder: .mlpackage) from torch.export with a dynamic batch dimension."""
    with converter_errors("Core ML (coremltools)"):
        import coremltools as ct

        batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
        exported = torch.export.export(
            job.model, (torch.randn(TRACE_BATCH, *job.chw),), dynamic_shapes=({0: batch},)
        ).run_decompositions({})
        precision = ct.precision.FLOAT16 if job.precision == "fp16" else ct.precision.FLOAT32
        mlmodel = ct.convert(
            exported,
            convert_to="mlprogram",
            compute_precision=precision,
            minimum_deployment_target=ct.target.iOS16,
        )
        mlmodel.save(str(job.path))


def write_metadata(path: Path, meta: dict[str, str]) -> None:
    """Put the kdedge.* strings into the package's user-defined metadata (inside the file)."""
    ct = coremltools()

    with converter_errors("Core ML (coremltools)"):
        mlmodel = ct.models.MLModel(str(path), skip_model_load=True)
        mlmodel.user_defined_metadata.update(meta)
        stamped = path.with_name(f".stamped-{path.name}")  # save() clears its target: never the source
        mlmodel.save(str(stamped))
        shutil.rmtree(path)
        os.replace(stamped, path)


def structure(path: Path, chw: tuple[int, int, int]) -> dict[str, Any]:
    """The structural check: one float input (batch range, C, H, W) and one output; RuntimeFailure
    (naming what is wrong) otherwise. Returns the input/output names and the batch range."""
    ct = coremltools()

    try:
        spec = ct.utils.load_spec(str(path))
    except Exception as err:  # noqa: BLE001 - protobuf / file errors: the package is unreadable
        raise RuntimeFailure(f"{path.name}: unreadable spec ({type(err).__name__})") from None
    inputs, outputs = spec.description.input, spec.description.output
    if len(inputs) != 1 or len(outputs) != 1:
        raise RuntimeFailure(f"{path.name}: expected 1 input, 1 output; got {len(inputs)}, {len(outputs)}")
    array = inputs[0].type.multiArrayType
    shape = tuple(int(v) for v in array.shape)
    ranges = [(r.lowerBound, r.upperBound) for r in array.shapeRange.sizeRanges]
    if shape[1:] != chw or (ranges and ranges[0][0] != 1):
        raise RuntimeFailure(f"{path.name}: input shape {shape} (ranges {ranges}), expected (N, {chw})")
    return {
        "input": inputs[0].name,
        "output": outputs[0].name,
        "batch_range": json.dumps(ranges[0] if ranges else [shape[0], shape[0]]),
    }
