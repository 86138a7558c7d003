"""The options of `kdedge search` (one object, shared by the command and `kdedge.search(...)`), and
everything derived from them and checked before any work: recipe, target, budget, space, folders."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from kdedge.errors import InputError
from kdedge.experiments.search.space import SpaceFile, load_space, packaged_space_path
from kdedge.experiments.search.target import Budget, Target, parse_target
from kdedge.recipe import Recipe, load_recipe, parse_set

BACKENDS = ("local", "ray")


@dataclass(frozen=True)
class RayChoice:
    """--backend ray's options (kdedge.experiments.sweep_ray.RayOptions without the test-only ones)."""

    address: str | None = None
    cpus: int | None = None
    cpus_per_point: float = 1.0
    gpus_per_point: float = 0.0
    retries: int = 2


@dataclass(frozen=True)
class SearchOptions:
    """`kdedge search RECIPE --target T --latency-ms X [...]`; see `kdedge search --help`."""

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
    backend: str = "local"
    ray: RayChoice = field(default_factory=RayChoice)
    hours: float | None = None
    cost_cache: Path | None = None  # None: kdedge.experiments.search.cost_cache.default_cache_file()
    use_cost_cache: bool = True
    seconds: float = 2.0  # timed seconds per cost measurement (after 0.5 s of warm-up)
    seeds: int = 1  # > 1: the pick and the recipe's own student trained and measured at this many seeds
    quiet: bool = False


@dataclass(frozen=True)
class SearchSetup:
    """The checked inputs of one search."""

    options: SearchOptions
    recipe: Recipe
    target: Target
    budget: Budget
    space: SpaceFile
    space_sha: str
    folder: Path


def check_numbers(options: SearchOptions) -> None:
    """Bad numbers and names are bad input, each one line naming the option."""
    if options.threads < 1 or options.batch < 1:
        raise InputError(f"--threads and --batch must be >= 1 (got {options.threads}, {options.batch})")
    if options.seconds <= 0:
        raise InputError(f"--seconds must be > 0 (got {options.seconds})")
    if options.seeds < 1:
        raise InputError(f"--seeds must be >= 1 (got {options.seeds})")
    if options.hours is not None and not options.hours > 0:
        raise InputError(f"--hours must be > 0 (got {options.hours})")
    if options.backend not in BACKENDS:
        raise InputError(f"--backend '{options.backend}': allowed are {', '.join(BACKENDS)}")
    if options.backend == "local" and options.ray != RayChoice():
        raise InputError(
            "--address, --cpus, --cpus-per-point, --gpus-per-point and --retries apply to --backend ray only"
        )


def prepare(options: SearchOptions) -> SearchSetup:
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
    if options.backend == "ray":
        from kdedge.experiments.sweep_ray import import_ray

        import_ray()  # not installed: one line now, not after the cost stage
    folder = options.out or Path("runs") / f"{recipe.name}_search"
    return SearchSetup(options, recipe, target, budget, space, space_sha, Path(folder))
