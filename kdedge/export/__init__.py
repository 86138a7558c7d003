"""torch -> ONNX fp32 / fp16 / int8, checked against PyTorch, self-describing (`kdedge export RUN`).

RUN/export/{student,teacher}.{fp32,fp16,int8}.onnx; input "images" (N, C, H, W) float32 normalised,
output "logits" (N, num_classes); dynamic batch dimension; metadata as in kdedge.runtime.onnx_meta.

This package's __init__ stays torch-free (bench and predict read metadata through it); the export itself
is kdedge.export.runner.export_run.
"""

from __future__ import annotations

import sys

from kdedge import CallablePackage
from kdedge.runtime.onnx_meta import read_metadata

sys.modules[__name__].__class__ = CallablePackage  # kdedge.export(run, ...) is the API call (kdedge.api)

__all__ = ["read_metadata", "PRECISIONS", "INT8_SCHEMES", "INT8_METHODS"]

PRECISIONS = ("fp32", "fp16", "int8")
INT8_SCHEMES = ("u8s8", "u8s7", "s8s8", "u8s8-gemm", "u8s7-gemm")  # see kdedge.export.int8_schemes
INT8_METHODS = ("ort", "nncf")  # the int8 quantiser: onnxruntime's quantize_static, or NNCF (optional extra)
