"""Teacher logits computed once and kept: in memory for one fit, in a file for the next (sweep points,
resumed runs). A file is only ever reused under the same key: the sha256 of the teacher's weights, the
training images and the transform that feeds the teacher (kdedge.train.loop.teacher_logits_key builds it)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from kdedge.files.atomic import save_state
from kdedge.files.integrity import CorruptFile, read_verified
from kdedge.ui.console import warn

KEY_FIELD = "kdedge.teacher_logits_key"


def digest_key(teacher: torch.nn.Module, images: torch.Tensor, transform: str) -> str:
    """sha256 (first 16 hex digits) of the teacher's architecture and weights, the images (bytes, shape,
    order) and `transform` (a JSON string describing what happens to an image before the teacher sees it)."""
    digest = hashlib.sha256(repr(teacher).encode())
    for name, tensor in teacher.state_dict().items():
        digest.update(f"{name}{tuple(tensor.shape)}{tensor.dtype}".encode())
        digest.update(_raw_bytes(tensor))
    digest.update(f"{tuple(images.shape)}{images.dtype}".encode())
    digest.update(_raw_bytes(images))
    digest.update(transform.encode())
    return digest.hexdigest()[:16]


def load_or_compute(
    path: Path | None, key: str, compute: Callable[[], torch.Tensor], writer: bool, device: torch.device
) -> torch.Tensor:
    """Logits saved at `path` under `key`, else compute() (saved there when `writer`: one rank under DDP).
    Shapes are whatever compute() returns: (N, C), or (V, N, C) with one row per augmentation variant."""
    if path is None:
        return compute()
    logits = _read(path, key)
    if logits is not None:
        return logits.to(device)
    logits = compute()
    if writer:
        save_state(path, {"logits": logits}, {KEY_FIELD: key})
    return logits


def _raw_bytes(tensor: torch.Tensor) -> memoryview:
    """The tensor's bytes (any dtype, bf16 included) without a copy when it is already on the CPU."""
    return memoryview(tensor.detach().reshape(-1).contiguous().cpu().view(torch.uint8).numpy())


def _read(path: Path, key: str) -> torch.Tensor | None:
    """Logits saved under `key`, or None (no file, another key, unreadable: recompute, it is only a cache).
    A file that fails its checksum or does not parse is never used; that is said once, on stderr."""
    if not path.exists():
        return None
    try:
        with safe_open(str(path), framework="pt") as handle:
            if (handle.metadata() or {}).get(KEY_FIELD) != key:
                return None
        return read_verified(path)[0]["logits"]
    except (SafetensorError, OSError, CorruptFile, KeyError) as err:
        why = "checksum mismatch" if isinstance(err, CorruptFile) else f"unreadable: {type(err).__name__}"
        warn(f"teacher logits cache {path} is corrupt ({why}); not used, recomputing it")
        return None
