"""Checksums of the safetensors files kdedge writes (weights, training state, teacher-logit cache).

A crash of the machine (power loss, a full disk on a cheap controller) can leave a file truncated or with
flipped bits even though every write was atomic. kdedge therefore stores a sha256 of a file's tensors and
other metadata in the file's own safetensors header under `kdedge.sha256` and checks it before the tensors
are used. Files without the key (written by another tool, or by kdedge before checksums) load as before:
there is nothing to check them against.

What is hashed, in order: each tensor sorted by name as "name|dtype|shape" then its raw bytes, then each
metadata entry except the checksum itself, sorted by key, as "key=value".
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from kdedge.errors import InputError

CHECKSUM_KEY = "kdedge.sha256"


class CorruptFile(InputError):
    """A kdedge file whose content no longer matches the checksum written with it."""


def digest(tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None) -> str:
    """sha256 hex digest of tensors (any dtype, any shape, CPU) and metadata strings."""
    sha = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        sha.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}".encode())
        sha.update(memoryview(tensor.reshape(-1).view(torch.uint8).numpy()))
    for key in sorted(metadata or {}):
        if key != CHECKSUM_KEY:
            sha.update(f"{key}={metadata[key]}".encode())
    return sha.hexdigest()


def with_checksum(tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None) -> dict[str, str]:
    """`metadata` plus the checksum of tensors + metadata, ready for safetensors' save_file."""
    return dict(metadata or {}) | {CHECKSUM_KEY: digest(tensors, metadata)}


def verify(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None) -> None:
    """Raise CorruptFile when `metadata` carries a checksum that the content does not match."""
    expected = (metadata or {}).get(CHECKSUM_KEY)
    if expected is not None and digest(tensors, metadata) != expected:
        raise CorruptFile(
            f"{path}: corrupt: its content no longer matches the sha256 kdedge stored in it "
            "(truncated or changed after it was written, e.g. by a crash of the machine); "
            "not used"
        )


def read_verified(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, metadata) of a safetensors file, checked against its stored checksum when it has one.
    Raises safetensors' own errors for a file that is not safetensors at all (callers word those)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
        tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118 - not a dict
    verify(path, tensors, metadata)
    return tensors, metadata
