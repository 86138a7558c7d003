"""Graph-level checks of an ONNX file from anyone, before onnxruntime loads it (kdedge.runtime.check runs
them for every .onnx): external data inside the model's folder and file, every tensor's declared size within
the limits and equal to the bytes it holds, node domains only standard ONNX and onnxruntime's built-in
com.microsoft, an opset no newer than the installed onnx. Reads the graph only, never tensor data.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kdedge.errors import InputError
from kdedge.runtime.check_limits import MAX_DIM, MAX_TENSOR_BYTES, refuse

ONNX_DOMAINS = ("", "ai.onnx", "ai.onnx.ml", "com.microsoft")  # standard + onnxruntime's built-in contrib
# operator sets a file may IMPORT without using: onnx's own preview/training sets and onnxruntime's built-in
# domains, all of which onnxruntime's quantizer writes into every int8 file (its pre-processing saves an
# onnxruntime-optimised model); nodes must still be in ONNX_DOMAINS
IMPORT_ONLY_DOMAINS = (
    "ai.onnx.preview",
    "ai.onnx.training",
    "ai.onnx.preview.training",
    "com.microsoft.experimental",
    "com.microsoft.nchwc",
    "com.ms.internal.nhwc",
    "com.microsoft.dml",
    "com.microsoft.mlfeaturizers",
    "org.pytorch.aten",
)


def max_onnx_opset() -> int:
    """The newest default-domain opset the installed onnx knows. (The pinned onnxruntime runs the same
    range: tried up to onnx's newest; an onnxruntime older than its onnx refuses a newer opset itself,
    still as one line through kdedge.runtime.onnx_meta.open_session.)"""
    import onnx

    return onnx.defs.onnx_opset_version()


def check_onnx(path: Path) -> None:
    """Graph-level checks of an ONNX file (parsed without its external data)."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as err:  # noqa: BLE001 - protobuf raises several types for a corrupt file
        raise InputError(f"{path}: not a valid ONNX file ({type(err).__name__})") from None
    _check_opsets(path, model)
    graphs = list(_graphs(model.graph))
    for graph in graphs:
        for node in graph.node:
            if node.domain not in ONNX_DOMAINS:
                raise refuse(
                    path,
                    f"node '{node.name or node.op_type}' uses the custom-op domain "
                    f"'{node.domain}' (allowed: standard ONNX and com.microsoft)",
                )
        for info in [*graph.input, *graph.output, *graph.value_info]:
            _check_value_info(path, info)
    for tensor in _tensors(graphs):
        _check_tensor(path, tensor)


def _check_opsets(path: Path, model: Any) -> None:
    newest = max_onnx_opset()
    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx") and opset.version > newest:
            raise refuse(
                path,
                f"opset {opset.version} is newer than this onnx/onnxruntime runs ({newest}); "
                "export it with an older opset",
            )
        if opset.domain not in ONNX_DOMAINS + IMPORT_ONLY_DOMAINS:
            raise refuse(
                path,
                f"imports the custom-op domain '{opset.domain}' (allowed: standard ONNX and com.microsoft)",
            )


def _graphs(graph: Any) -> Iterator[Any]:
    """The graph and every subgraph (If / Loop / Scan bodies) inside it."""
    yield graph
    for node in graph.node:
        for attribute in node.attribute:
            for sub in [attribute.g, *attribute.graphs] if attribute.HasField("g") else attribute.graphs:
                yield from _graphs(sub)


def _tensors(graphs: list[Any]) -> Iterator[Any]:
    """Every TensorProto a graph carries: initializers, sparse initializers, Constant node attributes."""
    for graph in graphs:
        yield from graph.initializer
        for sparse in graph.sparse_initializer:
            yield from (sparse.values, sparse.indices)
        for node in graph.node:
            for attribute in node.attribute:
                if attribute.HasField("t"):
                    yield attribute.t
                yield from attribute.tensors


def _check_value_info(path: Path, info: Any) -> None:
    dims = [d.dim_value for d in info.type.tensor_type.shape.dim if d.HasField("dim_value")]
    if any(d > MAX_DIM for d in dims):
        raise refuse(path, f"'{info.name}' declares dimensions {dims}, more than {MAX_DIM} in one")


def _check_tensor(path: Path, tensor: Any) -> None:
    """Declared size vs limits and vs the bytes actually present (inline or external)."""
    import onnx

    dims = list(tensor.dims)
    if any(d < 0 or d > MAX_DIM for d in dims):
        raise refuse(path, f"tensor '{tensor.name}' declares dimensions {dims} (each must be 0..{MAX_DIM})")
    try:
        itemsize = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
    except (KeyError, TypeError, ValueError):
        raise refuse(path, f"tensor '{tensor.name}' has unknown data type {tensor.data_type}") from None
    declared = math.prod(dims) * itemsize
    if declared > MAX_TENSOR_BYTES:
        raise refuse(
            path,
            f"tensor '{tensor.name}' of shape {dims} would need {declared / 2**30:.1f} GiB "
            f"(limit {MAX_TENSOR_BYTES >> 30} GiB)",
        )
    if tensor.data_location == onnx.TensorProto.EXTERNAL:
        _check_external(path, tensor, declared)
    elif tensor.HasField("raw_data") and len(tensor.raw_data) != declared and tensor.data_type != 8:
        raise refuse(
            path,
            f"tensor '{tensor.name}' declares {declared} bytes (shape {dims}) but holds {len(tensor.raw_data)}",
        )


def _check_external(path: Path, tensor: Any, declared: int) -> None:
    """External data: a relative path that stays inside the model's folder (symlinks resolved), and an
    offset + length inside that file."""
    entries = {entry.key: entry.value for entry in tensor.external_data}
    location = entries.get("location", "")
    folder = path.parent.resolve()
    target = (folder / location).resolve()
    if not location or os.path.isabs(location) or not target.is_relative_to(folder):
        raise refuse(path, f"tensor '{tensor.name}' points at external data '{location}' outside the model's folder")
    if not target.is_file():
        raise refuse(path, f"tensor '{tensor.name}': external data file '{location}' does not exist")
    try:
        offset, length = int(entries.get("offset", 0)), int(entries.get("length", declared))
    except ValueError:
        raise refuse(path, f"tensor '{tensor.name}': external data offset/length are not numbers") from None
    if offset < 0 or length != declared or offset + length > target.stat().st_size:
        raise refuse(
            path,
            f"tensor '{tensor.name}': external data ({offset}+{length} bytes) does not fit "
            f"'{location}' ({target.stat().st_size} bytes) or the declared {declared} bytes",
        )
