"""The options of `kdedge search` (one object, shared by the command and `kdedge.search(...)`), and
everything derived from them and checked before any work: recipe, target, budget, space, folders."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from kdedge.errors import InputError
from kdedge.experiments.search.space import SpaceFile, load_space, packaged_space_path
from kdedge.experiments.search.target import Budget, Target, parse_target
from kdedge.experiments.sweep_ray import RayOptions
from kdedge.recipe import Recipe, load_recipe, parse_set


@dataclass(frozen=True)
class SearchConfig:
    """What one search is asked to do, as the experiment takes it (kdedge.commands.options.SearchOptions is
    the command's form; `kdedge search --help` explains each). ray: the Ray to train on, None: here."""

    recipe: str
    target: str
    latency_ms: float
    size_mb: float | None = None
    peak_mb: float | None = None
    percentile: str = "p50"
    threads: int = 1
    batch: int = 1
    overrides: tuple[str, ...] = ()
    out: Path | None = None
    space: Path | None = None
    data_root: str | None = None
    ray: RayOptions | None = None
    hours: float | None = None
    cost_cache: Path | None = None  # None: kdedge.experiments.search.cost_cache.default_cache_file()
    use_cost_cache: bool = True
    seconds: float = 2.0  # timed seconds per cost measurement (after 0.5 s of warm-up)
    seeds: int = 1  # > 1: the pick and the recipe's own student trained and measured at this many seeds
    quiet: bool = False


@dataclass(frozen=True)
class SearchSetup:
    """The checked inputs of one search."""

    options: SearchConfig
    recipe: Recipe
    target: Target
    budget: Budget
    space: SpaceFile
    space_sha: str
    folder: Path


def check_numbers(options: SearchConfig) -> None:
    """Bad numbers and names are bad input, each one line naming the option."""
    if options.threads < 1 or options.batch < 1:
        raise InputError(f"--threads and --batch must be >= 1 (got {options.threads}, {options.batch})")
    if options.seconds <= 0:
        raise InputError(f"--seconds must be > 0 (got {options.seconds})")
    if options.seeds < 1:
        raise InputError(f"--seeds must be >= 1 (got {options.seeds})")
    if options.hours is not None and not options.hours > 0:
        raise InputError(f"--hours must be > 0 (got {options.hours})")


def prepare(options: SearchConfig) -> SearchSetup:
    """Parse and check everything a search needs before it touches a file: target first (a machine that
    cannot time it fails at once), then budget, space and recipe."""
    check_numbers(options)
    target = parse_target(options.target)
    budget = Budget(options.latency_ms, options.size_mb, options.peak_mb, options.percentile)
    budget.check()
    space = load_space(options.space)
    space_file = options.space or packaged_space_path()
    space_sha = hashlib.sha256(Path(space_file).read_bytes()).hexdigest()[:16]
    recipe = load_recipe(options.recipe, parse_set(list(options.overrides)))
    if recipe.student is None:
        raise InputError(f"{options.recipe}: the search tries students; this recipe has no student section")
    if recipe.distillation.feature_loss is not None:  # layer names belong to one student architecture
        raise InputError(
            f"{options.recipe}: distillation.feature_loss {recipe.distillation.feature_loss} names layers of one "
            "student, and a search tries other architectures; search with a logit loss (--set "
            "distillation.feature_loss=none), then distill the pick with the feature method"
        )
    folder = options.out or Path("runs") / f"{recipe.name}_search"
    return SearchSetup(options, recipe, target, budget, space, space_sha, Path(folder))
