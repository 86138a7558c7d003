"""The self-description of an exported ONNX file (metadata_props) and how to open one safely.

Torch-free on purpose (onnx + onnxruntime + stdlib only): `kdedge predict` and `kdedge bench` read
these files on machines that never install PyTorch.

Contract (TEAM.md): every value is a string; lists are JSON; input_size is "H,W";
mean / std are on the 0..1 pixel scale; test_accuracy was measured on the file itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kdedge import __version__
from kdedge.errors import InputError
from kdedge.runtime.check import check_model_file

PREFIX = "kdedge."


@dataclass(frozen=True)
class ModelCard:
    """What a consumer needs to feed an exported file: pre-processing and class names."""

    model: str
    precision: str
    input_size: tuple[int, int]  # (H, W)
    in_channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    class_names: tuple[str, ...]
    resize: str | None = None  # the training pre-processing (kdedge.runtime.imaging) of file-based data sets

    @property
    def pil_mode(self) -> str:
        """Pillow mode the input is converted to: grey for 1 channel, RGB for 3."""
        return "L" if self.in_channels == 1 else "RGB"


def build_metadata(values: dict[str, Any]) -> dict[str, str]:
    """{'model': 'mlp', 'mean': [0.13], ...} -> {'kdedge.model': 'mlp', 'kdedge.mean': '[0.13]', ...}.

    Lists / tuples become JSON, input_size (H, W) becomes "H,W", everything else str().
    """
    meta = {f"{PREFIX}version": __version__, f"{PREFIX}layout": "NCHW"}
    for key, value in values.items():
        if value is None:
            continue
        if key == "input_size":
            text = ",".join(str(int(v)) for v in value)
        elif isinstance(value, (list, tuple, dict)):
            text = json.dumps(list(value) if isinstance(value, tuple) else value)
        else:
            text = str(value)
        meta[f"{PREFIX}{key}"] = text
    return meta


def set_metadata(model: Any, meta: dict[str, str]) -> None:
    """Replace the kdedge.* metadata_props of an onnx.ModelProto (other keys are kept)."""
    kept = [(p.key, p.value) for p in model.metadata_props if not p.key.startswith(PREFIX)]
    del model.metadata_props[:]
    for key, value in [*kept, *sorted(meta.items())]:
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value


def read_metadata(onnx_path: str | Path) -> dict[str, str]:
    """All metadata_props of an ONNX file as {key: value} strings (kdedge.* keys per the contract).

    A missing, unreadable or non-ONNX file is an InputError naming the file.
    """
    import onnx

    path = Path(onnx_path)
    if not path.is_file():
        raise InputError(f"ONNX file not found: {path}")
    check_model_file(path)  # hostile graphs (external data outside the folder, absurd shapes) refused here
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as err:  # noqa: BLE001 - protobuf raises several types for a corrupt file
        raise InputError(f"{path}: not a valid ONNX file ({type(err).__name__})") from None
    if not model.graph.node:
        raise InputError(f"{path}: not a valid ONNX file (no graph)")
    return {prop.key: prop.value for prop in model.metadata_props}


def model_card(onnx_path: str | Path) -> ModelCard:
    """Parse the kdedge metadata a consumer needs; a file exported by something else is refused clearly."""
    return card_from_metadata(read_metadata(onnx_path), onnx_path)


def card_from_metadata(meta: dict[str, str], onnx_path: str | Path) -> ModelCard:
    """A ModelCard from kdedge.* strings (an ONNX file's metadata_props or an edge file's metadata)."""
    needed = ("model", "input_size", "in_channels", "mean", "std", "class_names")
    missing = [k for k in needed if PREFIX + k not in meta]
    if missing:
        raise InputError(
            f"{onnx_path}: not a kdedge export (metadata lacks {', '.join(PREFIX + k for k in missing)});"
            " export it with `kdedge export RUN`"
        )
    try:
        height, width = (int(v) for v in meta[PREFIX + "input_size"].split(","))
        return ModelCard(
            model=meta[PREFIX + "model"],
            precision=meta.get(PREFIX + "precision", "fp32"),
            input_size=(height, width),
            in_channels=int(meta[PREFIX + "in_channels"]),
            mean=tuple(json.loads(meta[PREFIX + "mean"])),
            std=tuple(json.loads(meta[PREFIX + "std"])),
            class_names=tuple(json.loads(meta[PREFIX + "class_names"])),
            resize=meta.get(PREFIX + "resize"),
        )
    except (ValueError, TypeError) as err:
        raise InputError(f"{onnx_path}: malformed kdedge metadata ({err})") from None


def open_session(onnx_path: str | Path, threads: int = 0) -> Any:
    """An onnxruntime CPU InferenceSession; a corrupt or missing file is one InputError line.

    threads=0 lets onnxruntime use every core.
    """
    import onnxruntime as ort

    path = Path(onnx_path)
    if not path.is_file():
        raise InputError(f"ONNX file not found: {path}")
    check_model_file(path)
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: ORT's warnings are noise for users
    options.intra_op_num_threads = threads
    # no busy-waiting between ops: on a shared or battery-powered CPU spinning threads only burn cycles
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as err:  # noqa: BLE001 - ORT raises its own exception types for bad files
        first = str(err).strip().splitlines()[0][:160] if str(err).strip() else type(err).__name__
        raise InputError(f"{path}: onnxruntime cannot load it ({first})") from None


def run_logits(session: Any, images: Any, batch_size: int = 256) -> Any:
    """logits (N, num_classes) float32 of a session for normalised images (N, C, H, W) float32 (numpy)."""
    import numpy as np

    name = session.get_inputs()[0].name
    chunks = [session.run(None, {name: images[i : i + batch_size]})[0] for i in range(0, len(images), batch_size)]
    return np.concatenate(chunks).astype(np.float32) if chunks else np.zeros((0, 0), np.float32)
