"""PyTorch -> ExecuTorch `.pte` lowered to the XNNPACK backend (kdedge-distill[executorch]).

fp32: torch.export with a dynamic batch dimension, to_edge_transform_and_lower with the XNNPACK
partitioner, to_executorch. int8: PyTorch's pt2e flow first (XNNPACKQuantizer, symmetric per-channel
int8 weights, int8 activations, ranges observed on real training images), then the same lowering.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from kdedge.export.edge_common import TRACE_BATCH, ConvertJob, converter_errors

MAX_BATCH = 1024  # the dynamic batch dimension's upper bound (ExecuTorch plans memory for a range)


def _exported(model: nn.Module, chw: tuple[int, int, int]) -> torch.export.ExportedProgram:
    """model traced at TRACE_BATCH with the batch dimension dynamic in 1..MAX_BATCH."""
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    example = (torch.randn(TRACE_BATCH, *chw),)
    return torch.export.export(model, example, dynamic_shapes=({0: batch},))


def _quantized(model: nn.Module, chw: tuple[int, int, int], calibration: np.ndarray) -> nn.Module:
    """pt2e int8: XNNPACKQuantizer (per-channel symmetric weights) observed on `calibration`
    (N, C, H, W) float32 normalised training images, in batches of 16."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    prepared = prepare_pt2e(_exported(model, chw).module(), quantizer)
    with torch.no_grad():
        for start in range(0, len(calibration), 16):
            prepared(torch.from_numpy(np.ascontiguousarray(calibration[start : start + 16])))
    return convert_pt2e(prepared)


def convert(job: ConvertJob) -> None:
    """Write job.path: the model (fp32 or int8 per job.precision) as an XNNPACK-lowered .pte."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    with converter_errors("ExecuTorch"):
        model = job.model
        if job.precision == "int8":
            model = _quantized(model, job.chw, job.calibration)
        program = to_edge_transform_and_lower(
            _exported(model, job.chw), partitioner=[XnnpackPartitioner()]
        ).to_executorch()
        Path(job.path).write_bytes(program.buffer)
