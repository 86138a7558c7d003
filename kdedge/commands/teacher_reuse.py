"""Before a long teacher training: say so, and name an earlier run whose teacher the same recipe trained
(`--set teacher.checkpoint=RUN` reuses it instead of training it again)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from kdedge.recipe import Recipe

LONG_IMAGE_PASSES = 1_000_000  # epochs x training images: minutes on a CPU even for an MLP teacher


def _same_teacher(saved: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """The teacher, data and seed sections that decide the teacher's weights are the same. A run records
    the mean / std it measured on the training split (data.mean / data.std); a recipe that leaves them to
    be measured matches it."""
    data = dict(saved.get("data") or {})
    for key in ("mean", "std"):
        if (wanted.get("data") or {}).get(key) is None:
            data[key] = None
    saved = saved | {"data": data}
    return all(saved.get(key) == wanted.get(key) for key in ("teacher", "data", "seed"))


def earlier_teachers(recipe: Recipe, runs: Path, skip: Path | None = None) -> list[Path]:
    """Run folders under `runs` (and sweeps' teacher folders) with a trained teacher of this recipe's
    teacher, data and seed, newest first; `skip` (the run about to be written) is left out."""
    wanted = recipe.to_dict()
    found = []
    for weights in [*runs.glob("*/teacher.safetensors"), *runs.glob("*/teacher/teacher.safetensors")]:
        folder = weights.parent
        if skip is not None and folder.resolve() == skip.resolve():
            continue
        try:
            saved = yaml.safe_load((folder / "recipe.yaml").read_text())
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(saved, dict) and _same_teacher(saved, wanted):
            found.append(folder)
    return sorted(found, key=lambda f: (f / "teacher.safetensors").stat().st_mtime, reverse=True)


def teacher_notice(recipe: Recipe, train_images: int, out: Path, runs: Path = Path("runs")) -> str | None:
    """One line to print before training, or None: when the teacher will be trained and an earlier run
    has the same teacher, or the training is long (LONG_IMAGE_PASSES)."""
    cfg = recipe.teacher
    if cfg is None or cfg.checkpoint:
        return None
    passes = cfg.epochs * train_images
    earlier = earlier_teachers(recipe, runs, out) if runs.is_dir() else []
    if earlier:
        return (
            f"note: the teacher trains first ({cfg.epochs} epochs over {train_images:,} images); "
            f"{earlier[0]} holds one trained from the same teacher, data and seed: stop (Ctrl-C) and "
            f"add --set teacher.checkpoint={earlier[0]} to reuse it"
        )
    if passes >= LONG_IMAGE_PASSES:
        return (
            f"note: the teacher trains first ({cfg.epochs} epochs over {train_images:,} images, the long "
            f"part); later runs can reuse it: --set teacher.checkpoint={out}"
        )
    return None
