"""Publishing an edge file (ExecuTorch, LiteRT, Core ML) with its kdedge.* metadata, atomically per file: the
sidecar is written (temp + rename) before the model file is renamed into place, so a reader that finds the
model file always finds its metadata (read back by kdedge.runtime.edge_meta)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from kdedge.runtime.edge_meta import sidecar
from kdedge.runtime.formats import Format
from kdedge.runtime.onnx_meta import build_metadata


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


def _set_mode(path: Path) -> None:
    """The user's umask on the file, or on a folder (.ncnn) and every file in it (folders keep x)."""
    if path.is_dir():
        for item in [path, *path.rglob("*")]:
            os.chmod(item, (0o777 if item.is_dir() else 0o666) & ~_umask())
    else:
        os.chmod(path, 0o666 & ~_umask())


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
        _set_mode(built)  # some converters write 0755 or 0600 files
        _move_into_place(built, final)
    return final
