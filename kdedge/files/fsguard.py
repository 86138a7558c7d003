"""The file system saying no: a full disk (ENOSPC / EDQUOT) and folders kdedge may not write to.

Both become one line naming the file or folder. A full disk is a RuntimeFailure (exit 1): the input was
fine, the machine ran out of room; the message says how much the file needed and how much is free, and
every file written before stays as it was (writes are temp file + rename, kdedge.files.rundir.atomic_write).
A read-only or permission-denied folder is an InputError (exit 2), checked before the work starts.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kdedge.errors import InputError, RuntimeFailure

FULL = (errno.ENOSPC, errno.EDQUOT)
DENIED = (errno.EROFS, errno.EACCES, errno.EPERM)
# libraries that write in native code (safetensors, onnx, openvino) report a full disk in their own words
FULL_TEXTS = ("No space left on device", "StorageFull", "os error 28", "Disk quota exceeded")


class DiskFull(RuntimeFailure):
    """A write failed for lack of space; `path` is the file that could not be written."""

    def __init__(self, message: str, path: Path) -> None:
        super().__init__(message)
        self.path = path


class NotWritable(InputError):
    """A folder kdedge must write to is read-only or not ours."""


def is_disk_full(err: BaseException) -> bool:
    """Whether an exception (OSError or a native library's wrapper of one) means the disk is full."""
    if isinstance(err, OSError) and err.errno in FULL:
        return True
    return any(text in str(err) for text in FULL_TEXTS)


def existing_ancestor(path: Path) -> Path:
    """`path` or its nearest parent that exists (where a new file or folder would take its space)."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _free(path: Path) -> int:
    return shutil.disk_usage(existing_ancestor(path.parent)).free


def megabytes(count: int) -> str:
    return f"{count / 1e6:.1f} MB" if count >= 100_000 else f"{count / 1e3:.0f} kB"


def disk_full_message(path: Path, needed: int | None) -> str:
    """'PATH: no space left on device (needs about X, Y free in FOLDER); the previous PATH is kept'."""
    folder = existing_ancestor(path.parent)
    free = shutil.disk_usage(folder).free
    need = f"needs about {megabytes(needed)}" if needed else f"needs more than the {megabytes(free)} free"
    kept = "; the previous file is kept as it was" if path.exists() else ""
    return f"{path}: no space left on device ({need}, {megabytes(free)} free in {folder}){kept}"


@contextmanager
def disk_full_as_error(path: Path, needed: int | None = None) -> Iterator[None]:
    """Turn a full disk while writing `path` into DiskFull, and a read-only / forbidden folder into
    NotWritable; any other error passes through unchanged."""
    try:
        yield
    except DiskFull:
        raise
    except Exception as err:
        # numpy and others report a short write without an errno: the free space tells what happened
        short = isinstance(err, OSError) and needed is not None and _free(Path(path)) < needed
        if is_disk_full(err) or short:
            raise DiskFull(disk_full_message(Path(path), needed), Path(path)) from None
        if isinstance(err, OSError) and err.errno in DENIED:
            raise NotWritable(f"{path}: cannot write it ({os.strerror(err.errno)})") from None
        raise


def check_writable(folder: Path, what: str) -> None:
    """One InputError line, before any work, when `folder` (or the parent it would be created in) cannot
    take a new file: probed by creating and removing one, which also catches read-only mounts as root."""
    target = existing_ancestor(Path(folder))
    if not target.is_dir():
        raise NotWritable(f"{what} {folder}: {target} is not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".kdedge-write-test-", dir=target)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        reason = os.strerror(err.errno) if err.errno else str(err)
        raise NotWritable(f"{what} {folder}: cannot write there ({reason}); choose a writable folder") from None
