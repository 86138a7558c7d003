"""PyTorch -> ExecuTorch `.pte` lowered to the XNNPACK backend (kdedge-distill[executorch]).

fp32: torch.export with a dynamic batch dimension, to_edge_transform_and_lower with the XNNPACK
partitioner, to_executorch. int8: PyTorch's pt2e flow first (XNNPACKQuantizer, symmetric per-channel
int8 weights, int8 activations, ranges observed on real training images), then the same lowering.

The batch bound. ExecuTorch plans (and allocates when the program loads) memory for the largest input, so
a `.pte` takes at most batch_bound(chw) images a call: 1024, or fewer where 1024 images would pass 64 MiB
of input (111 at 3x224x224). XNNPACK's backend passes (FuseBatchNormPass and the others) re-trace the graph,
and the fake convolution asks ATen which kernel it would use; ATen's heuristic compares the batch with 16
(`input.size(0) >= 16`, Convolution.cpp), and with the traced batch of 2 that guard narrowed the batch
range to 2..15: every CNN file took at most 15 images a call. The lowering therefore runs with
torch.fx.experimental._config.backed_size_oblivious, under which such a query takes its default without
narrowing the range (the same fix was proposed to ExecuTorch as pytorch/executorch#19262).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from kdedge.export.edge_common import TRACE_BATCH, ConvertJob, converter_errors

MAX_BATCH = 1024  # the most images one call of a .pte takes ...
MAX_INPUT_BYTES = 64 * 2**20  # ... unless that much float32 input would pass 64 MiB (planned memory)
MIN_BOUND = 8  # the export's parity check runs batch 7 in one call


def batch_bound(chw: tuple[int, int, int]) -> int:
    """The batch bound written into the .pte for (C, H, W) images: 1024 for MNIST / CIFAR sizes, 111 for
    3x224x224, never under MIN_BOUND."""
    image_bytes = 4 * chw[0] * chw[1] * chw[2]
    return max(MIN_BOUND, min(MAX_BATCH, MAX_INPUT_BYTES // image_bytes))


def _exported(model: nn.Module, chw: tuple[int, int, int]) -> torch.export.ExportedProgram:
    """model traced at TRACE_BATCH with the batch dimension dynamic in 1..batch_bound(chw)."""
    batch = torch.export.Dim("batch", min=1, max=batch_bound(chw))
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
    from torch.fx.experimental import _config as fx_config

    with converter_errors("ExecuTorch"):
        model = job.model
        if job.precision == "int8":
            model = _quantized(model, job.chw, job.calibration)
        exported = _exported(model, job.chw)
        with fx_config.patch(backed_size_oblivious=True):  # keep 1..bound (module doc)
            program = to_edge_transform_and_lower(exported, partitioner=[XnnpackPartitioner()]).to_executorch()
        Path(job.path).write_bytes(program.buffer)
