"""`python -m kdedge ...` (what `torchrun -m kdedge` runs)."""

import os
import sys


def _forget_working_folder() -> None:
    """Run from a folder that holds a `kdedge/` directory (the clone's parent), `python -m kdedge` has
    imported that folder as a namespace package: drop the working folder from sys.path and import the
    installed kdedge instead; PYTHONSAFEPATH keeps it off the path of every process this one starts."""
    package = sys.modules.get("kdedge")
    if package is None or getattr(package, "__file__", None):
        return
    here = os.getcwd()
    sys.path[:] = [entry for entry in sys.path if entry not in ("", here)]
    for name in [name for name in sys.modules if name == "kdedge" or name.startswith("kdedge.")]:
        del sys.modules[name]
    os.environ["PYTHONSAFEPATH"] = "1"


_forget_working_folder()

from kdedge.cli import main  # noqa: E402  (after the working folder is gone from sys.path)

if __name__ == "__main__":
    main()
