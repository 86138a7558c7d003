"""Metadata of the edge files (the same kdedge.* strings as the ONNX metadata_props, see
kdedge.runtime.onnx_meta): inside the file where the format has a place for it (Core ML user-defined
metadata), else in a sidecar `<file>.json` beside it (ExecuTorch .pte, LiteRT .tflite). Reading is
torch-free (json / coremltools spec only), so `kdedge predict` and bench read it on a device.

Writing it is kdedge.export.publish_edge.
"""

from __future__ import annotations

import json
from pathlib import Path

from kdedge.errors import InputError
from kdedge.runtime.check import check_model_file
from kdedge.runtime.edge_runners import native_output_silenced
from kdedge.runtime.formats import format_of_file
from kdedge.runtime.onnx_meta import ModelCard, card_from_metadata


def sidecar(path: str | Path) -> Path:
    """student.int8.pte -> student.int8.pte.json."""
    return Path(str(path).rstrip("/") + ".json")


def read_edge_metadata(path: str | Path) -> dict[str, str]:
    """kdedge.* metadata of an edge file: Core ML from inside the package, others from the sidecar."""
    path = Path(path)
    fmt = format_of_file(str(path))
    if not path.exists():
        raise InputError(f"file not found: {path}")
    if path.is_file():
        check_model_file(path)  # flatbuffer header (kdedge.runtime.check): one line for a corrupt file
    if fmt is not None and fmt.metadata == "inside" and fmt.edge:  # Core ML's user-defined metadata
        try:
            return read_coreml_metadata(path)
        except Exception as err:  # noqa: BLE001 - a corrupt package
            raise InputError(f"{path}: coremltools cannot read it ({type(err).__name__})") from None
    side = sidecar(path)
    if not side.is_file():
        raise InputError(f"{path}: no metadata sidecar {side.name} beside it (made by `kdedge export`)")
    try:
        meta = json.loads(side.read_text())
    except (OSError, ValueError) as err:
        raise InputError(f"{side}: not a readable JSON metadata file ({type(err).__name__})") from None
    if not isinstance(meta, dict):
        raise InputError(f"{side}: expected a JSON object of kdedge.* strings")
    return {str(k): str(v) for k, v in meta.items()}


def edge_card(path: str | Path) -> ModelCard:
    """The pre-processing and class names of an edge file (see onnx_meta.model_card)."""
    return card_from_metadata(read_edge_metadata(path), path)


def coremltools():
    """coremltools, imported with its off-macOS "Failed to load ..." lines kept off the terminal."""
    with native_output_silenced():
        import coremltools

    return coremltools


def read_coreml_metadata(path: Path) -> dict[str, str]:
    """The user-defined metadata of an .mlpackage (spec only: no model load, works off macOS)."""
    spec = coremltools().utils.load_spec(str(path))
    return dict(spec.description.metadata.userDefined)
