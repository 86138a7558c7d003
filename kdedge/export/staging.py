"""`kdedge export RUN --force`: the new export is built in a fresh folder next to RUN/export and swapped in
with renames only when every file passed, so old files never linger and a failed export keeps the old one.

The swap is two renames (RUN/export -> RUN/.export-old-*/export, then the new folder -> RUN/export); a
crash between them leaves the previous export intact inside RUN/.export-old-*, never a half-written one.
Without --force, files are published one by one straight into RUN/export (export_folder says which).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kdedge.files.atomic import shared_mode


def staging_dir(run_path: Path) -> Path:
    """A fresh, empty folder RUN/.export-new-XXXX on the same file system as RUN/export."""
    folder = Path(tempfile.mkdtemp(dir=run_path, prefix=".export-new-"))
    os.chmod(folder, shared_mode(0o777))  # mkdtemp made it owner-only; it becomes RUN/export
    return folder


@contextmanager
def export_folder(run_path: Path, force: bool) -> Iterator[Path]:
    """The folder an export publishes into: RUN/export, or with force a fresh staging folder that is
    discarded on the way out (after swap_in there is nothing left to discard). A RUN/export made here
    and still empty on the way out is removed: an export that wrote nothing leaves the run as it was."""
    folder = staging_dir(run_path) if force else run_path / "export"
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    try:
        yield folder
    finally:
        if force:
            discard(folder)
        elif created and not any(folder.iterdir()):
            folder.rmdir()


def swap_in(staged: Path, final: Path) -> None:
    """Make `staged` the folder `final`; the previous `final` (if any) is deleted only afterwards."""
    old = None
    if final.exists():
        old = Path(tempfile.mkdtemp(dir=final.parent, prefix=".export-old-"))
        os.replace(final, old / final.name)
    try:
        os.replace(staged, final)
    except OSError:
        if old is not None:
            os.replace(old / final.name, final)  # put the previous export back
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def discard(staged: Path) -> None:
    """Remove a staging folder that was not swapped in (a failed or interrupted forced export)."""
    shutil.rmtree(staged, ignore_errors=True)
