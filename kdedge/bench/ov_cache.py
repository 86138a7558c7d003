"""OpenVINO IR cache for the bench's OpenVINO rows: each ONNX file is converted to IR once and reused.

Reading ONNX in OpenVINO runs its ONNX frontend (a graph conversion) in every row's process; reading IR
(.xml graph + .bin weights) skips that. The IR lives beside the file it came from:

    FOLDER/model.onnx  ->  FOLDER/.openvino/model-<sha256[:16]>-ov<version>.xml / .bin

Keyed by the sha256 of the ONNX bytes (a re-export changes it even at the same size and mtime; hashing
even a 100 MB file costs a fraction of a second next to compiling it) and by the OpenVINO version that
wrote it. Written atomically (saved in a private temp folder, .bin then .xml renamed into place, so an
.xml that exists always has its .bin); older IRs of the same file are deleted. A folder we cannot write
to is not an error: the row reads the ONNX file directly and its detail says so.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

CACHE_DIR = ".openvino"


def onnx_sha256(path: Path) -> str:
    """Hex sha256 of the file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def ov_version() -> str:
    """'2026.4.1' from OpenVINO's '2026.4.1-22982-e213a147257-releases/2026/4'."""
    import openvino as ov

    return ov.__version__.split("-")[0]


def ir_path(onnx_path: Path) -> Path:
    """Where the IR (.xml; its .bin beside it) of this exact ONNX content and OpenVINO version lives."""
    key = onnx_sha256(onnx_path)[:16]
    return onnx_path.parent / CACHE_DIR / f"{onnx_path.stem}-{key}-ov{ov_version()}.xml"


def read_cached(core: Any, onnx_path: Path) -> tuple[Any, str]:
    """(openvino.Model with the file's original, dynamic shapes, how it was obtained): 'IR cached',
    'IR converted' or 'ONNX read (IR cache not writable: why)'."""
    xml = ir_path(onnx_path)
    if xml.is_file() and xml.with_suffix(".bin").is_file():
        try:
            return core.read_model(str(xml)), "IR cached"
        except RuntimeError:
            pass  # a damaged cache entry is rebuilt below, never trusted
    model = core.read_model(str(onnx_path))
    try:
        _save_atomically(model, xml)
    except (OSError, RuntimeError) as err:  # read-only folder, full disk, ...: the row still runs
        why = getattr(err, "strerror", None) or str(err).strip().splitlines()[0][:80] or type(err).__name__
        return model, f"ONNX read (IR cache not writable: {why})"
    _drop_stale(xml, onnx_path.stem)
    # read back what later rows will read, so every row of a file runs the same IR
    return core.read_model(str(xml)), "IR converted"


def _save_atomically(model: Any, xml: Path) -> None:
    """openvino.save_model into a temp folder beside `xml`, then rename .bin and .xml into place.

    compress_to_fp16=False: save_model's default stores weights as fp16, which would change the f32
    rows' numbers against reading the ONNX file; the cache must be numerically invisible.
    """
    import openvino as ov

    xml.parent.mkdir(exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=xml.parent, prefix=".tmp-"))
    try:
        ov.save_model(model, str(staging / "model.xml"), compress_to_fp16=False)
        os.replace(staging / "model.bin", xml.with_suffix(".bin"))  # .bin first: a visible .xml has its .bin
        os.replace(staging / "model.xml", xml)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _drop_stale(current: Path, stem: str) -> None:
    """Delete this ONNX file's IRs for other contents or OpenVINO versions (never another file's)."""
    pattern = re.compile(re.escape(stem) + r"-[0-9a-f]{16}-ov[^/]+\.(xml|bin)")
    for path in current.parent.iterdir():
        if pattern.fullmatch(path.name) and path.with_suffix(".xml") != current:
            path.unlink(missing_ok=True)
