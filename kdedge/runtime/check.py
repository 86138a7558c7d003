"""Sanity checks of a model file from anyone, before a runtime loads it: `check_model_file(path)`.

`kdedge predict`, `bench` and `export --target` open files a stranger may have made. A runtime trusts
what a file declares: a tensor of 10^12 elements is allocated, an external-data path is opened wherever it
points, a custom-op domain asks for code to be loaded. Each check here reads only the file's header or
graph (never tensor data) and refuses with one InputError line naming the file and the limit.

Per suffix (CHECKS; another format registers its own check there, e.g. CHECKS[".pte"] = check_pte):
- .onnx (kdedge.runtime.check_onnx): external data must stay inside the model's folder and inside its
  file; every tensor's declared size within MAX_TENSOR_BYTES and equal to the bytes it holds; dimensions
  <= MAX_DIM; node domains only the standard ones and onnxruntime's built-in com.microsoft; opset no newer
  than this onnx/onnxruntime.
- .safetensors: header length, JSON, dtypes, shapes and offsets consistent with the file's size.
- .xml (OpenVINO IR): no DTD/entities, Const offsets/sizes inside the .bin, port dims <= MAX_DIM.
- .tflite / .pte: the flatbuffer file identifier (TFL3 / ET..); deeper checks belong to their readers.
- every suffix: exists, is a file, size <= MAX_FILE_BYTES (check_generic).
The limits and the refusal line are kdedge.runtime.check_limits.

Torch-free (onnx, numpy and the standard library): predict runs where PyTorch is not installed.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

from kdedge.errors import InputError
from kdedge.runtime.check_limits import MAX_DIM, MAX_FILE_BYTES, MAX_HEADER_BYTES, MAX_TENSOR_BYTES, refuse
from kdedge.runtime.check_onnx import check_onnx

SAFETENSORS_ITEMSIZE = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E5M2": 1,
    "F8_E4M3": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "I64": 8,
    "U64": 8,
    "F64": 8,
}
IR_ITEMSIZE = {
    "f32": 4,
    "f16": 2,
    "bf16": 2,
    "f64": 8,
    "i64": 8,
    "i32": 4,
    "i16": 2,
    "i8": 1,
    "u8": 1,
    "u16": 2,
    "u32": 4,
    "u64": 8,
    "boolean": 1,
    "u1": 1,
    "i4": 1,
    "u4": 1,
    "nf4": 1,
}


def check_generic(path: Path) -> None:
    """Exists, is a regular file, is not larger than MAX_FILE_BYTES."""
    if not path.is_file():
        raise InputError(f"model file not found: {path}")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise refuse(path, f"{size / 2**30:.1f} GiB, more than the {MAX_FILE_BYTES >> 30} GiB kdedge accepts")


def check_model_file(path: str | Path) -> None:
    """Refuse (InputError, one line) a model file whose header or graph is unsafe to load; see the module
    docstring for what each format's check covers. Cached per (path, size, mtime): bench and predict ask
    more than once for the same file."""
    path = Path(path)
    check_generic(path)
    stat = path.stat()
    _check_cached(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=256)
def _check_cached(path: str, size: int, mtime_ns: int) -> None:
    check = CHECKS.get(Path(path).suffix.lower())
    if check is not None:
        check(Path(path))


# -- safetensors ----------------------------------------------------------------------------------------
def _not_safetensors(path: Path, why: str) -> InputError:
    return InputError(f"{path}: not a valid safetensors file ({why}); refused before loading")


def check_safetensors(path: Path) -> None:
    """Header length, JSON, dtypes, shapes and data offsets against the file's real size."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise _not_safetensors(path, f"{size} bytes, too short for a safetensors header")
        (length,) = struct.unpack("<Q", prefix)
        if length > MAX_HEADER_BYTES or 8 + length > size:
            raise _not_safetensors(path, f"safetensors header claims {length} bytes in a {size}-byte file")
        try:
            header = json.loads(handle.read(length))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise _not_safetensors(path, "safetensors header is not valid JSON (truncated or corrupt)") from None
    if not isinstance(header, dict):
        raise _not_safetensors(path, "safetensors header is not a JSON object")
    data_bytes = size - 8 - length
    for name, entry in header.items():
        if name != "__metadata__":
            _check_safetensors_entry(path, name, entry, data_bytes)


def _check_safetensors_entry(path: Path, name: str, entry: Any, data_bytes: int) -> None:
    try:
        itemsize = SAFETENSORS_ITEMSIZE[entry["dtype"]]
        shape = [int(d) for d in entry["shape"]]
        begin, end = (int(v) for v in entry["data_offsets"])
    except (KeyError, TypeError, ValueError):
        raise _not_safetensors(path, f"tensor '{name}' has a malformed entry in the safetensors header") from None
    if any(d < 0 or d > MAX_DIM for d in shape) or math.prod(shape) * itemsize > MAX_TENSOR_BYTES:
        raise _not_safetensors(
            path,
            f"tensor '{name}' declares shape {shape} (limits: {MAX_DIM} per dimension, "
            f"{MAX_TENSOR_BYTES >> 30} GiB per tensor)",
        )
    if not 0 <= begin <= end <= data_bytes or end - begin != math.prod(shape) * itemsize:
        raise _not_safetensors(
            path,
            f"tensor '{name}' (shape {shape}) has data offsets {begin}..{end} that do not "
            f"fit its size or the file's {data_bytes} data bytes (truncated?)",
        )


# -- OpenVINO IR ----------------------------------------------------------------------------------------
def check_openvino_ir(path: Path) -> None:
    """An IR .xml and its .bin: no DTD (entity expansion), Const data inside the .bin, sane port dims."""
    import xml.etree.ElementTree as ElementTree

    text = path.read_bytes()
    if len(text) > MAX_HEADER_BYTES:
        raise refuse(path, f"{len(text)} bytes of XML, more than {MAX_HEADER_BYTES >> 20} MiB")
    if b"<!DOCTYPE" in text or b"<!ENTITY" in text:
        raise refuse(path, "the XML declares a DTD / entities (OpenVINO IR never does)")
    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError as err:
        raise refuse(path, f"not valid XML ({err})") from None
    binary = path.with_suffix(".bin")
    bin_size = binary.stat().st_size if binary.is_file() else 0
    for dim in root.iter("dim"):
        if (dim.text or "").strip().lstrip("-").isdigit() and int(dim.text) > MAX_DIM:
            raise refuse(path, f"a port declares dimension {dim.text.strip()} (limit {MAX_DIM})")
    for data in root.iter("data"):
        if "offset" in data.attrib and "size" in data.attrib:
            _check_ir_const(path, data.attrib, bin_size)


def _check_ir_const(path: Path, attrib: dict[str, str], bin_size: int) -> None:
    try:
        offset, size = int(attrib["offset"]), int(attrib["size"])
        shape = [int(d) for d in attrib.get("shape", "").split(",") if d.strip()]
    except ValueError:
        raise refuse(path, f"a Const has malformed offset/size/shape {attrib}") from None
    itemsize = IR_ITEMSIZE.get(attrib.get("element_type", ""), 1)
    if offset < 0 or size < 0 or offset + size > bin_size or any(d < 0 or d > MAX_DIM for d in shape):
        raise refuse(path, f"a Const claims bytes {offset}..{offset + size} of a {bin_size}-byte .bin (shape {shape})")
    if shape and itemsize > 1 and math.prod(shape) * itemsize != size:
        raise refuse(path, f"a Const of shape {shape} declares {size} bytes, not {math.prod(shape) * itemsize}")


# -- flatbuffer formats (.tflite, .pte) ------------------------------------------------------------------
def check_flatbuffer(path: Path, identifier: bytes, what: str) -> None:
    """A flatbuffer's 4-byte file identifier at bytes 4..8 (TFLite: TFL3; ExecuTorch: ET + version):
    anything else is not that format and is refused before its runtime parses offsets from it."""
    with open(path, "rb") as handle:
        head = handle.read(8)
    if len(head) < 8 or not head[4:8].startswith(identifier):
        raise refuse(path, f"not a {what} file (no '{identifier.decode()}' flatbuffer identifier)")


CHECKS: dict[str, Callable[[Path], None]] = {
    ".tflite": lambda path: check_flatbuffer(path, b"TFL3", "LiteRT / TFLite"),
    ".pte": lambda path: check_flatbuffer(path, b"ET", "ExecuTorch"),
    ".onnx": check_onnx,
    ".safetensors": check_safetensors,
    ".xml": check_openvino_ir,
}
