"""Atomic file writes: temp file in the same folder, then os.replace, so a crash never leaves a half-written
file; safetensors with a checksum (kdedge.files.integrity). Importing it imports no torch."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from kdedge.files.fsguard import disk_full_as_error

if TYPE_CHECKING:
    import torch


def shared_mode(mode: int) -> int:
    """`mode` minus this process's umask: what an ordinary mkdir / open would have given."""
    umask = os.umask(0)
    os.umask(umask)
    return mode & ~umask


def atomic_write(path: Path, write: Callable[[Path], None], needed: int | None = None) -> None:
    """Call write(tmp_path) on a temp file next to `path`, then rename it over `path` with the permissions
    a plain open() would give (mkstemp's owner-only 0600 would hide run files from a team's other users).
    A full disk is one DiskFull line naming `path` and the space it needs (`needed` bytes when known);
    the previous `path` is untouched either way."""
    with disk_full_as_error(path, needed):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            write(tmp)
            os.chmod(tmp, shared_mode(0o666))
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text), len(text.encode()))


def save_state(path: Path, state: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Tensors + string metadata as safetensors, atomically, with a sha256 checked on load (integrity)."""
    from safetensors.torch import save_file  # here: writing text files (`kdedge init`) needs no torch

    from kdedge.files.integrity import with_checksum

    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    metadata = with_checksum(tensors, metadata)
    needed = sum(t.numel() * t.element_size() for t in tensors.values()) + len(json.dumps(metadata)) + 4096
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata), needed)
