"""Every architecture name timm knows, without importing timm (or torch): a recipe's model name is checked
when the recipe is read, and `kdedge recipes` / `kdedge init` must start at once.

The names come from timm_models.txt beside this file, a snapshot of `timm.list_models()` written by
`python -m kdedge.models.timm_names` (tests/test_models.py fails when it no longer matches the installed
timm). A name missing from the snapshot is asked of the installed timm itself (a newer timm's model), which
imports torch, but only for such a name.
"""

from __future__ import annotations

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
    if importlib.util.find_spec("timm") is None or "." in name:
        return False
    import timm  # a name the snapshot lacks: maybe a newer timm knows it

    return timm.is_model(name)


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
