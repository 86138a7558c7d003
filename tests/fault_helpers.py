"""Real faults for tests: a small tmpfs that fills up, a read-only folder, a flipped or truncated file.

Mounting needs root (CI runs as root); without it, or where the kernel refuses, the test is skipped with
the reason. Every mount is undone on the way out, also when the test fails.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def _mount(*args: str) -> None:
    result = subprocess.run(["mount", *args], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount here ({result.stderr.strip() or result.returncode}): mount {' '.join(args)}")


def _need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a size-limited or read-only file system needs root (CI runs as root)")


@contextmanager
def small_disk(folder: Path, kilobytes: int) -> Iterator[Path]:
    """`folder` as a tmpfs of `kilobytes` (ENOSPC once full); resize with resize_disk."""
    _need_root()
    folder.mkdir(parents=True, exist_ok=True)
    _mount("-t", "tmpfs", "-o", f"size={kilobytes}k,mode=0777", "tmpfs", str(folder))
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def resize_disk(folder: Path, kilobytes: int) -> None:
    """Free space on a small_disk by growing it (its files stay)."""
    _mount("-o", f"remount,size={kilobytes}k", str(folder))


def fill_disk(folder: Path, leave_bytes: int = 0) -> Path:
    """Write a ballast file until at most `leave_bytes` are free on `folder`'s file system."""
    ballast = folder / "ballast"
    free = os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize
    with open(ballast, "wb") as handle:
        try:
            handle.write(b"\0" * max(free - leave_bytes, 0))
        except OSError:
            pass
    return ballast


@contextmanager
def read_only(folder: Path) -> Iterator[Path]:
    """`folder` (existing, with its files) made read-only by a read-only bind mount onto itself: real
    EROFS, which also stops root (chmod does not)."""
    _need_root()
    _mount("--bind", str(folder), str(folder))
    try:
        _mount("-o", "remount,bind,ro", str(folder))
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def flip_byte(path: Path, offset: int = -1) -> None:
    """Invert the bits of one byte (default: the last, inside the tensor data of a safetensors file)."""
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def truncate(path: Path, keep: float = 0.5) -> None:
    """Cut the file to `keep` of its length, as a crash of the machine during write-back can."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
