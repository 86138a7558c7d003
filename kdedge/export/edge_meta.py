"""Metadata of the edge files (the same kdedge.* strings as the ONNX metadata_props, see
kdedge.onnx_meta): inside the file where the format has a place for it (Core ML user-defined
metadata), else in a sidecar `<file>.json` beside it (ExecuTorch .pte, LiteRT .tflite). Reading is
torch-free (json / coremltools spec only), so `kdedge predict` and bench read it on a device.

Publishing is atomic per file: the sidecar is written (temp + rename) before the model file is renamed
into place, so a reader that finds the model file always finds its metadata.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from kdedge.errors import InputError
from kdedge.export.formats import Format, format_of_file
from kdedge.model_check import check_model_file
from kdedge.onnx_meta import ModelCard, build_metadata, card_from_metadata


def sidecar(path: str | Path) -> Path:
    """student.int8.pte -> student.int8.pte.json."""
    return Path(str(path).rstrip("/") + ".json")


def _atomic_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, path)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _move_into_place(built: Path, final: Path) -> None:
    """Rename `built` over `final`; a folder (.mlpackage) replaces an older one through a side name."""
    if built.is_dir() and final.exists():
        old = final.with_name(f".{final.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
        os.replace(built, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(built, final)


def publish_edge(built: Path, out_dir: Path, fmt: Format, values: dict) -> Path:
    """Write the metadata (inside, or the sidecar) and move the checked file into out_dir."""
    meta = build_metadata(values)
    final = out_dir / built.name
    if fmt.metadata == "inside":
        from kdedge.export.coreml_convert import write_metadata

        write_metadata(built, meta)
        _move_into_place(built, final)
        sidecar(final).unlink(missing_ok=True)  # an older export's sidecar would contradict the file
    else:
        _atomic_text(sidecar(final), json.dumps(meta, indent=2, sort_keys=True) + "\n")
        os.chmod(built, 0o666 & ~_umask())  # some converters write 0755 or 0600 files
        _move_into_place(built, final)
    return final


def read_edge_metadata(path: str | Path) -> dict[str, str]:
    """kdedge.* metadata of an edge file: Core ML from inside the package, others from the sidecar."""
    path = Path(path)
    fmt = format_of_file(str(path))
    if not path.exists():
        raise InputError(f"file not found: {path}")
    if path.is_file():
        check_model_file(path)  # flatbuffer header (kdedge.model_check): one line for a corrupt file
    if fmt is not None and fmt.metadata == "inside" and fmt.name != "onnx":
        from kdedge.export.coreml_convert import read_metadata

        try:
            return read_metadata(path)
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
