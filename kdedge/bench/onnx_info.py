"""What bench needs to know about an ONNX file without PyTorch: kdedge metadata, parameter count, FLOPs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from kdedge.errors import InputError


def read_metadata(path: Path) -> dict[str, str]:
    """kdedge.* metadata_props of an ONNX file: through kdedge.export.read_metadata when the export
    module is there (one reader for the contract), else straight from the protobuf."""
    try:
        from kdedge.export import read_metadata as export_read_metadata
    except ImportError:
        export_read_metadata = None
    if export_read_metadata is not None:
        return dict(export_read_metadata(path))
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as err:  # noqa: BLE001 - a corrupt or foreign file is bad input
        raise InputError(f"{path}: not a readable ONNX file ({type(err).__name__}: {str(err)[:100]})") from None
    return {prop.key: prop.value for prop in model.metadata_props}


def input_shape(path: Path, meta: dict[str, str]) -> tuple[int, int, int]:
    """(C, H, W) from the kdedge metadata, else from the graph's first input."""
    if "kdedge.input_size" in meta and "kdedge.in_channels" in meta:
        height, width = (int(v) for v in meta["kdedge.input_size"].split(","))
        return int(meta["kdedge.in_channels"]), height, width
    import onnx

    dims = onnx.load(str(path), load_external_data=False).graph.input[0].type.tensor_type.shape.dim
    values = [d.dim_value for d in dims[1:]]
    if len(values) != 3 or not all(values):
        raise InputError(
            f"{path}: input is not (N, C, H, W) with fixed C, H, W and there is no kdedge.input_size metadata"
        )
    return values[0], values[1], values[2]


def meta_list(meta: dict[str, str], key: str) -> list | None:
    return json.loads(meta[key]) if key in meta else None


def _is_quant_param(name: str) -> bool:
    return name.endswith(("_scale", "_zero_point", "scale", "zero_point"))


def graph_stats(path: Path, shape: tuple[int, int, int]) -> dict[str, Any]:
    """{'params', 'flops'} of an ONNX classifier for ONE image of `shape` (C, H, W): parameters = weight
    elements (quantisation scales / zero points excluded), FLOPs = 2 x multiply-adds of Conv, Gemm and
    MatMul (what torch.utils.flop_counter counts), from onnx shape inference with batch 1."""
    import onnx

    model = onnx.load(str(path))
    params = sum(int(np.prod(t.dims)) for t in model.graph.initializer if t.dims and not _is_quant_param(t.name))
    first = model.graph.input[0].type.tensor_type.shape
    for dim, value in zip(first.dim, (1, *shape), strict=False):
        dim.ClearField("dim_param")
        dim.dim_value = value
    try:
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception:  # noqa: BLE001 - FLOPs are optional information
        return {"params": params, "flops": None}
    shapes = {
        v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
        for v in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]
    }
    shapes.update({t.name: list(t.dims) for t in model.graph.initializer})
    producers = {out: node for node in inferred.graph.node for out in node.output}
    flops, known = 0, True
    for node in inferred.graph.node:
        if node.op_type not in ("Conv", "Gemm", "MatMul"):
            continue
        out = _batch_one(shapes.get(node.output[0]))
        operand = _batch_one(shapes.get(_through_dequant(node.input[1 if node.op_type == "Conv" else 0], producers)))
        if not out or not operand or 0 in out or 0 in operand:
            known = False
            continue
        if node.op_type == "Conv":  # out (N, Cout, ...) x (Cin/groups x kernel) multiply-adds per output
            flops += 2 * int(np.prod(out)) * int(np.prod(operand[1:]))
        else:  # A (..., M, K) @ B: K multiply-adds per output element
            k = operand[0] if node.op_type == "Gemm" and _attr(node, "transA") else operand[-1]
            flops += 2 * int(np.prod(out)) * int(k)
    return {"params": params, "flops": flops if known else None}


def _batch_one(shape: list[int] | None) -> list[int] | None:
    """Shape inference loses the batch dim after data-dependent Reshapes (0 = unknown); the input was fixed
    to batch 1, so an unknown LEADING dim of an activation is that 1. Other unknown dims stay unknown."""
    return [1, *shape[1:]] if shape and shape[0] == 0 and len(shape) > 1 else shape


def _through_dequant(name: str, producers: dict) -> str:
    """The float weight behind a QDQ DequantizeLinear (same shape), so int8 graphs count like fp32 ones."""
    node = producers.get(name)
    return node.input[0] if node is not None and node.op_type == "DequantizeLinear" else name


def _attr(node, name: str) -> int:
    return next((a.i for a in node.attribute if a.name == name), 0)
