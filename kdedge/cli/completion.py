"""Shell completion (`kdedge --install-completion`): recipe names and files, run folders.

Called by the shell on every TAB, so nothing heavy is imported here (no torch, no kdedge.recipe).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

RUN_MARKERS = ("recipe.yaml", "summary.json", "sweep.json")  # what makes a folder a run (or a sweep)


def _paths(incomplete: str, keep) -> list[str]:
    """Paths starting with `incomplete` that `keep` accepts, folders with a trailing '/' to go deeper."""
    folder, _, prefix = incomplete.rpartition("/")
    base = Path(folder) if folder else Path(".")
    if not base.is_dir():
        return []
    out = []
    for path in sorted(base.iterdir()):
        if path.name.startswith(prefix) and not path.name.startswith("."):
            shown = f"{folder}/{path.name}" if folder else path.name
            if keep(path):
                out.append(shown)
            elif path.is_dir():
                out.append(shown + "/")
    return out


def recipe_names(incomplete: str) -> list[str]:
    """Packaged recipe names and .yaml files (and folders on the way to them)."""
    packaged = sorted(
        Path(str(p)).stem for p in (resources.files("kdedge") / "recipes").iterdir() if str(p).endswith(".yaml")
    )
    names = [name for name in packaged if name.startswith(incomplete)]
    return names + _paths(incomplete, lambda p: p.is_file() and p.suffix in (".yaml", ".yml"))


def run_folders(incomplete: str) -> list[str]:
    """Run and sweep folders (holding recipe.yaml / summary.json / sweep.json); runs/ first when empty."""

    def is_run(path: Path) -> bool:
        return path.is_dir() and any((path / marker).is_file() for marker in RUN_MARKERS)

    return _paths(incomplete or ("runs/" if Path("runs").is_dir() else ""), is_run)


def runs_and_onnx(incomplete: str) -> list[str]:
    """Run folders and .onnx files (bench, predict)."""
    return sorted({*run_folders(incomplete), *_paths(incomplete, lambda p: p.is_file() and p.suffix == ".onnx")})
