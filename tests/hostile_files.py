"""Builders of hostile model and image files for tests/test_hostile_files.py: each one is what a
stranger could hand `kdedge predict` / `bench` / `export --target` / a recipe's checkpoint, small on
disk, absurd inside."""

from __future__ import annotations

import json
import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from kdedge.runtime.onnx_meta import build_metadata, set_metadata

CARD = {
    "model": "mlp",
    "stage": "student",
    "precision": "fp32",
    "input_size": (28, 28),
    "in_channels": 1,
    "mean": [0.1307],
    "std": [0.3081],
    "class_names": [str(d) for d in range(10)],
    "dataset": "mnist",
    "recipe_sha": "0" * 16,
    "test_accuracy": 0.5,
}


def labelled_model(
    nodes: list,
    initializers: list | None = None,
    opset: int = 17,
    inputs: list | None = None,
    extra_opsets: list | None = None,
) -> onnx.ModelProto:
    """(1, 784) -> (1, 10) graph with kdedge metadata, so only the hostile part can make it fail."""
    images = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 784])
    logits = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])
    graph = helper.make_graph(nodes, "hostile", inputs or [images], [logits], initializer=initializers or [])
    opsets = [helper.make_opsetid("", opset), *(extra_opsets or [])]
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    set_metadata(model, build_metadata(CARD))
    return model


def _matmul(weight: TensorProto) -> onnx.ModelProto:
    return labelled_model([helper.make_node("MatMul", ["images", "w"], ["logits"])], [weight])


def _external(location: str, offset: int = 0, length: int = 784 * 10 * 4) -> onnx.ModelProto:
    weight = TensorProto(name="w", dims=[784, 10], data_type=TensorProto.FLOAT)
    weight.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", str(offset)), ("length", str(length))):
        weight.external_data.add(key=key, value=value)
    return _matmul(weight)


def _huge_initializer() -> onnx.ModelProto:
    return _matmul(TensorProto(name="w", dims=[784, 1 << 20, 1 << 10], data_type=TensorProto.FLOAT))


def _lying_raw_data() -> onnx.ModelProto:
    weight = TensorProto(name="w", dims=[784, 10], data_type=TensorProto.FLOAT, raw_data=b"\0" * 8)
    return _matmul(weight)  # the helper refuses to build this; a hand-made protobuf does not


def _negative_dim() -> onnx.ModelProto:
    return _matmul(TensorProto(name="w", dims=[784, -10], data_type=TensorProto.FLOAT))


def _huge_input() -> onnx.ModelProto:
    images = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 1 << 31])
    weight = helper.make_tensor("w", TensorProto.FLOAT, [784, 10], np.zeros(7840, np.float32).tobytes(), raw=True)
    return labelled_model([helper.make_node("MatMul", ["images", "w"], ["logits"])], [weight], inputs=[images])


def _huge_constant() -> onnx.ModelProto:
    value = TensorProto(name="c", dims=[1 << 20, 1 << 20], data_type=TensorProto.FLOAT)
    return labelled_model(
        [
            helper.make_node("Constant", [], ["c"], value=value),
            helper.make_node("Identity", ["images"], ["logits"]),
        ]
    )


def _custom_op() -> onnx.ModelProto:
    node = helper.make_node("Pwn", ["images"], ["logits"], domain="evil.ops")
    return labelled_model([node], extra_opsets=[helper.make_opsetid("evil.ops", 1)])


def _custom_op_in_subgraph() -> onnx.ModelProto:
    out = helper.make_tensor_value_info("inner", TensorProto.FLOAT, [1, 10])
    body = helper.make_graph([helper.make_node("Pwn", ["images"], ["inner"], domain="evil.ops")], "b", [], [out])
    cond = helper.make_tensor("cond", TensorProto.BOOL, [], [True])
    node = helper.make_node("If", ["cond"], ["logits"], then_branch=body, else_branch=body)
    return labelled_model([node], [cond])


def _custom_opset_import() -> onnx.ModelProto:
    return labelled_model(
        [helper.make_node("Identity", ["images"], ["logits"])],
        extra_opsets=[helper.make_opsetid("com.example.custom", 1)],
    )


def _future_opset() -> onnx.ModelProto:
    return labelled_model([helper.make_node("Identity", ["images"], ["logits"])], opset=99)


def _save(model: onnx.ModelProto, path: Path) -> None:
    path.write_bytes(model.SerializeToString())  # onnx.save would validate or move external data


def build_onnx(folder: Path) -> dict[str, Path]:
    """{case id: hostile .onnx file}; external-data cases get their own sub-folder."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "short.bin").write_bytes(b"\0" * 64)
    os.symlink("/etc/passwd", folder / "link.bin")
    builders: dict[str, Callable[[], onnx.ModelProto]] = {
        "onnx-external-parent": lambda: _external("../../../../etc/passwd"),
        "onnx-external-absolute": lambda: _external("/etc/passwd"),
        "onnx-external-symlink-out": lambda: _external("link.bin"),
        "onnx-external-missing": lambda: _external("nowhere.bin"),
        "onnx-external-overrun": lambda: _external("short.bin", offset=32),
        "onnx-huge-initializer": _huge_initializer,
        "onnx-raw-data-lies": _lying_raw_data,
        "onnx-negative-dim": _negative_dim,
        "onnx-huge-input": _huge_input,
        "onnx-huge-constant": _huge_constant,
        "onnx-custom-op": _custom_op,
        "onnx-custom-op-in-subgraph": _custom_op_in_subgraph,
        "onnx-custom-opset-import": _custom_opset_import,
        "onnx-future-opset": _future_opset,
    }
    files = {}
    for name, build in builders.items():
        files[name] = folder / f"{name}.onnx"
        _save(build(), files[name])
    return files


def _safetensors(header: object, data: bytes = b"", length: int | None = None) -> bytes:
    text = json.dumps(header).encode() if not isinstance(header, bytes) else header
    return struct.pack("<Q", len(text) if length is None else length) + text + data


SAFETENSORS = {  # id -> file content
    "st-header-length-huge": _safetensors({}, length=1 << 62),
    "st-header-beyond-file": _safetensors({}, length=4096),
    "st-header-not-json": _safetensors(b"{not json at all"),
    "st-header-not-object": _safetensors([1, 2, 3]),
    "st-absurd-shape": _safetensors(
        {"w": {"dtype": "F32", "shape": [1 << 40, 1 << 20], "data_offsets": [0, 4]}}, b"\0" * 4
    ),
    "st-offsets-beyond-file": _safetensors({"w": {"dtype": "F32", "shape": [10], "data_offsets": [0, 40]}}, b"\0" * 8),
    "st-offsets-disagree-shape": _safetensors(
        {"w": {"dtype": "F32", "shape": [10], "data_offsets": [0, 8]}}, b"\0" * 8
    ),
    "st-unknown-dtype": _safetensors({"w": {"dtype": "Q7", "shape": [2], "data_offsets": [0, 2]}}, b"\0" * 2),
    "st-too-short": b"\x01\x02\x03",
}


def build_safetensors(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, content in SAFETENSORS.items():
        files[name] = folder / f"{name}.safetensors"
        files[name].write_bytes(content)
    return files


def _png(width: int, height: int, idat: bytes) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def build_images(folder: Path) -> dict[str, Path]:
    """Bad images: a decompression bomb (a 40,000 x 40,000 PNG header on 1 kB of deflate), a huge canvas
    just over kdedge's limit, a truncated PNG and JPEG, an empty file, text named .png."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    zero_rows = zlib.compress(b"\0" * (40_001 * 16))
    good = folder / "good.png"
    Image.fromarray(np.full((28, 28), 200, np.uint8)).save(good)
    Image.fromarray(np.full((64, 64, 3), 90, np.uint8)).save(folder / "good.jpg")
    images = {
        "image-decompression-bomb": _png(40_000, 40_000, zero_rows),
        "image-over-limit": _png(9_000, 8_000, zero_rows),
        "image-truncated-png": good.read_bytes()[:-30],
        "image-truncated-jpeg": (folder / "good.jpg").read_bytes()[:200],
        "image-empty": b"",
        "image-text-as-png": b"hello, I am not an image\n",
    }
    files = {}
    for name, content in images.items():
        files[name] = folder / f"{name}{'.jpg' if 'jpeg' in name else '.png'}"
        files[name].write_bytes(content)
    return files


def good_model(path: Path) -> Path:
    """A working kdedge-labelled classifier: (N, 1, 28, 28) -> Flatten -> MatMul (784, 10) -> logits."""
    images = helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 1, 28, 28])
    logits = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])
    weight = helper.make_tensor(
        "w", TensorProto.FLOAT, [784, 10], np.linspace(-1, 1, 7840, dtype=np.float32).tobytes(), raw=True
    )
    nodes = [
        helper.make_node("Flatten", ["images"], ["flat"]),
        helper.make_node("MatMul", ["flat", "w"], ["logits"]),
    ]
    graph = helper.make_graph(nodes, "good", [images], [logits], initializer=[weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    set_metadata(model, build_metadata(CARD))
    onnx.save(model, str(path))
    return path
