"""Every architecture name timm knows, without importing timm (or torch): a recipe's model name is checked
when the recipe is read, and `kdedge recipes` / `kdedge init` must start at once.

The names come from timm_models.txt beside this file, a snapshot of `timm.list_models()` written by
`python -m kdedge.models.timm_names` (tests/test_models_input_size.py fails when it no longer matches the installed
timm). A name missing from the snapshot is asked of the installed timm itself only when that timm is not the
version the snapshot lists (a newer timm's model), which imports torch; with the snapshot's own timm, an
unknown name is an error at once.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from functools import lru_cache
from importlib import resources

SNAPSHOT = "timm_models.txt"


@lru_cache(maxsize=1)
def timm_names() -> tuple[str, ...]:
    """The snapshot's names, sorted (1,371 with timm 1.0.31)."""
    text = (resources.files("kdedge.models") / SNAPSHOT).read_text()
    return tuple(line for line in text.splitlines() if line and not line.startswith("#"))


def snapshot_version() -> str:
    """The timm version the snapshot was taken from."""
    first = (resources.files("kdedge.models") / SNAPSHOT).read_text().splitlines()[0]
    return first.split()[2].rstrip(":")


def is_timm_name(name: str) -> bool:
    """Whether timm builds an architecture of this name (timm names, no pretrained tag such as '.a1_in1k')."""
    if name in _name_set():
        return True
    if "." in name or _installed_timm() in (None, snapshot_version()):
        return False  # no timm, or the very timm the snapshot lists: the snapshot's answer is final
    import timm  # a name the snapshot lacks: maybe this newer (or older) timm knows it

    return timm.is_model(name)


@lru_cache(maxsize=1)
def _installed_timm() -> str | None:
    """The installed timm's version from its package metadata (no import, so no torch), None without timm."""
    if importlib.util.find_spec("timm") is None:
        return None
    try:
        return importlib.metadata.version("timm")
    except importlib.metadata.PackageNotFoundError:  # importable but not installed as a distribution
        return "unknown"


@lru_cache(maxsize=1)
def _name_set() -> frozenset[str]:
    return frozenset(timm_names())


def write_snapshot() -> None:
    """Rewrite timm_models.txt from the installed timm."""
    import timm

    header = f"# timm {timm.__version__}: timm.list_models(), one name a line (python -m kdedge.models.timm_names)"
    path = resources.files("kdedge.models") / SNAPSHOT
    path.write_text("\n".join([header, *timm.list_models()]) + "\n")  # type: ignore[union-attr]


if __name__ == "__main__":
    write_snapshot()
