"""Child Python processes that import the installed kdedge whatever folder they start in.

`python -m kdedge.x` puts the working folder first on `sys.path`. Run from a folder that holds a `kdedge/`
directory (the clone's parent folder: the clone is `./kdedge`), a child would import that folder as the
package: `No module named kdedge.bench.worker`. PYTHONSAFEPATH=1 (Python >= 3.11) keeps the working folder
off `sys.path`, in the child and in every process it starts in turn.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

SAFE_PATH = {"PYTHONSAFEPATH": "1"}


def child_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """`base` (default: this process's environment) with the working folder kept off the child's sys.path."""
    return {**(os.environ if base is None else base), **SAFE_PATH}


def python_module(module: str, *args: str) -> list[str]:
    """The command that runs `module` with this interpreter, as `python -P -m module args` does."""
    safe = ["-P"] if sys.version_info >= (3, 11) else []
    return [sys.executable, *safe, "-m", module, *args]


def package_root() -> Path:
    """The folder that holds the kdedge package this process imported (its parent's parent)."""
    return Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def in_package_root() -> Iterator[None]:
    """Work in package_root() for a moment: Ray puts the driver's working folder first on every worker's
    sys.path at ray.init(); this way that folder is the one that holds the kdedge the driver runs."""
    before = Path.cwd()
    os.chdir(package_root())
    try:
        yield
    finally:
        os.chdir(before)
