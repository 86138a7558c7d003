"""`kdedge sweep`: many students from ONE teacher, one run directory per grid point.

SWEEP/teacher/            the teacher, trained once (skipped when the recipe names teacher.checkpoint)
SWEEP/points/<k=v,...>/   one ordinary run directory per point (its teacher.checkpoint is the sweep's teacher)
SWEEP/baseline/           the student trained alone (distillation.loss: none; sweep.baseline: false skips
                          it), one per combination of non-distillation grid values: each row's KD gain
SWEEP/sweep.json          grid, metric, teacher weights: what `kdedge report` and a resumed sweep read
SWEEP/sweep.csv, .md      one row per point, sorted by the metric;  SWEEP/sweep_heatmap.png  test errors
SWEEP/alpha_study.*       for a grid over the alpha: both conventions' table and loss curves (alpha_study)

A point whose summary.json says "finished" is skipped, so an interrupted sweep resumes where it stopped; on
the local backend with one job, SIGTERM / Ctrl-C stop the point in flight at a step boundary with its state
saved, and the same command continues it (kdedge.experiments.stopping, shared with `kdedge search`).
Grid keys under `teacher.` are refused: every point shares the one teacher.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import yaml

from kdedge.errors import InputError, RuntimeFailure
from kdedge.experiments.stopping import check_stop
from kdedge.experiments.sweep_results import is_finished, write_results
from kdedge.files.atomic import atomic_write_text
from kdedge.files.rundir import RunDir
from kdedge.recipe import Recipe, apply_overrides, check_key, validate_recipe
from kdedge.recipe.grid import Grid, grid_points, point_name
from kdedge.runtime.threads import limit as limit_threads
from kdedge.runtime.threads import share


def parse_grid(items: list[str]) -> Grid:
    """['distillation.alpha=0.1,0.5', 'distillation.temperature=2'] -> {key: [0.1, 0.5], ...}; values are
    YAML scalars (typed later by the schema); keys are checked against the recipe schema."""
    grid: Grid = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        values = [v.strip() for v in raw.split(",") if v.strip()]
        if not sep or not key or not values:
            raise InputError(f"--grid '{item}': expected KEY=V1,V2,..., e.g. distillation.temperature=2.5,4,8")
        check_key(key)
        grid[key] = [yaml.safe_load(v) for v in values]
    return grid


def check_grid(grid: Grid) -> None:
    """An empty grid, an empty axis or a teacher key is bad input."""
    if not grid:
        raise InputError(
            "sweep: empty grid; give --grid KEY=V1,V2 (e.g. distillation.alpha=0.1,0.5,0.9) or a "
            "recipe with a sweep.grid section"
        )
    for key, values in grid.items():
        check_key(key)
        if not values:
            raise InputError(f"sweep.grid.{key}: no values; give at least one")
        if key.startswith("teacher."):
            raise InputError(
                f"sweep.grid.{key}: the sweep trains ONE teacher for all points; sweep student, "
                "distillation or data keys (run `kdedge train` per teacher setting instead)"
            )


def point_recipe(base: Recipe, point: dict[str, Any], teacher_weights: str | None) -> Recipe:
    """The base recipe with the point's values, the shared teacher's weights, and no sweep section."""
    overrides = dict(point) | ({"teacher.checkpoint": teacher_weights} if teacher_weights else {})
    config = apply_overrides(base.to_dict(), overrides)
    config["sweep"] = None
    return validate_recipe(config, source=f"sweep point {point_name(point)}")


# -- running ------------------------------------------------------------------------------------------------
def _run_point(config: dict, path: str, data_root: str | None, threads: int | None, progress=None) -> dict:
    """Train one grid point (or the sweep's teacher-only run) into the run directory `path`, in this
    process or a spawned worker (`config` is the resolved recipe as a dict; `threads` caps torch's threads
    in a worker). Returns its summary.

    The caller skips finished points. An unfinished one continues where it stopped, never starts over: a
    stage whose weights are saved is loaded, a stage with a training state (RUN/<stage>.state.safetensors)
    resumes from it. A point's teacher is loaded from the sweep's teacher (teacher.checkpoint), never
    trained here."""
    if threads:
        limit_threads(threads)  # before torch is imported here: OpenMP reads OMP_NUM_THREADS once
    from kdedge.train.pipeline import run_recipe

    recipe = validate_recipe(config, source=path)
    run = RunDir(Path(path)).open_for_writing(force=False)
    # points share SWEEP/teacher_logits.safetensors: the teacher runs over the data once, not once per point
    # (kdedge.train.teacher_cache.teacher_logits_for reuses it only while teacher weights, data and transform match)
    point = Path(path)
    shared = point.parent.parent / "teacher_logits.safetensors" if point.parent.name == "points" else None
    try:
        return run_recipe(recipe, run, data_root, progress=progress, teacher_logits_file=shared)
    finally:
        run.release()


def shared_teacher(base: Recipe, sweep_dir: Path, data_root: str | None, progress=None) -> str | None:
    """Path of the teacher weights every point loads: the recipe's teacher.checkpoint, else SWEEP/teacher
    trained once here (kept when a previous, interrupted sweep finished it)."""
    if base.teacher is None:
        return None
    if base.teacher.checkpoint:
        return base.teacher.checkpoint
    teacher_dir = sweep_dir / "teacher"
    if not is_finished(teacher_dir):  # a teacher-only run: the recipe without its student
        _run_point(base.to_dict() | {"student": None, "sweep": None}, str(teacher_dir), data_root, None, progress)
    return str(teacher_dir / "teacher.safetensors")


def run_sweep(
    base: Recipe,
    grid: Grid,
    sweep_dir: Path,
    data_root: str | None,
    jobs: int = 1,
    metric: str | None = None,
    progress=None,
    runner: Callable | None = None,
) -> list[dict]:
    """Train the teacher once, then every grid point; write sweep.json/.csv/.md and the heat map.
    Returns the rows, best first. `runner` trains the unfinished points (default: here or in a local
    process pool; experiments.sweep_ray.run_points: on Ray) and returns the points that failed for good."""
    check_grid(grid)
    metric = metric or (base.sweep.metric if base.sweep else "test_errors")
    if jobs < 1:
        raise InputError(f"--jobs must be >= 1 (got {jobs})")
    points = grid_points(grid)
    _check_points(base, points, data_root)
    teacher = shared_teacher(base, sweep_dir, data_root, progress)
    recipes = [point_recipe(base, point, teacher) for point in points]
    paths = [sweep_dir / "points" / point_name(point) for point in points]
    baselines, same = planned_baselines(base, grid, teacher, sweep_dir)
    manifest = {
        "recipe": base.name,
        "grid": grid,
        "metric": metric,
        "teacher": teacher,
        "points": len(points),
        "baselines": [str(path.relative_to(sweep_dir)) for path in [*baselines, *same.values()]],
    }
    atomic_write_text(sweep_dir / "sweep.json", json.dumps(manifest, indent=2))
    runner = runner or _run_unfinished
    failed = runner([*recipes, *baselines.values()], [*paths, *baselines], data_root, jobs, progress)
    baseline_dirs = [
        same.get(baseline_dir(sweep_dir, point), baseline_dir(sweep_dir, point)) if baselines or same else None
        for point in points
    ]
    rows = write_results(sweep_dir, points, paths, metric, base.name, baseline_dirs)
    if failed:
        listed = ", ".join(failed[:3]) + (f" and {len(failed) - 3} more" if len(failed) > 3 else "")
        raise RuntimeFailure(
            f"sweep: {len(failed)} of {len(paths) + len(baselines)} runs failed: {listed}; "
            f"the finished ones are in {sweep_dir / 'sweep.csv'}; rerun to retry the others"
        )
    return rows


def planned_baselines(
    base: Recipe, grid: Grid, teacher: str | None, sweep_dir: Path
) -> tuple[dict[Path, Recipe], dict[Path, Path]]:
    """(no-KD baselines to train {folder: recipe}, baselines that are a point {folder: point path}): a point
    with alpha 0 has the baseline's objective (cross-entropy only), so it is that baseline, trained once."""
    baselines = baseline_runs(base, grid, teacher, sweep_dir)
    same = {}
    for point in grid_points(grid) if baselines else []:
        if point_recipe(base, point, teacher).distillation.soft_weight == 0:
            same[baseline_dir(sweep_dir, point)] = sweep_dir / "points" / point_name(point)
    return {f: r for f, r in baselines.items() if f not in same}, same


def _without_distillation(point: dict[str, Any]) -> dict[str, Any]:
    """The point's values that are not distillation keys: what its no-KD baseline shares with it."""
    return {key: value for key, value in point.items() if not key.startswith("distillation.")}


def baseline_dir(sweep_dir: Path, point: dict[str, Any]) -> Path:
    """Where the no-KD baseline of a point lives: one per combination of the grid's non-distillation values
    (SWEEP/baseline for an alpha x temperature grid; SWEEP/baseline/student.epochs=50 and so on otherwise)."""
    rest = _without_distillation(point)
    return sweep_dir / "baseline" / point_name(rest) if rest else sweep_dir / "baseline"


def baseline_runs(base: Recipe, grid: Grid, teacher: str | None, sweep_dir: Path) -> dict[Path, Recipe]:
    """The no-KD baselines: each point's student with distillation.loss none (it still loads the shared
    teacher, only to report it), one per baseline_dir. None when sweep.baseline is off, the recipe has no
    student or teacher, or the recipe or grid already sets the loss (a grid over the loss holds its own)."""
    wanted = base.sweep.baseline if base.sweep else True
    if not wanted or base.student is None or base.teacher is None:
        return {}
    if base.distillation.loss == "none" or "distillation.loss" in grid:
        return {}
    runs = {}
    for point in grid_points(grid):
        no_kd = _without_distillation(point) | {"distillation.loss": "none"}
        runs[baseline_dir(sweep_dir, point)] = point_recipe(base, no_kd, teacher)
    return runs


def _check_points(base: Recipe, points: list[dict[str, Any]], data_root: str | None) -> None:
    """Every point's recipe validates, and its transfer set suits the data, before anything trains (a bad
    data root fails here too, not once per point)."""
    recipes = [point_recipe(base, point, None) for point in points]
    from kdedge.train.biasfix import check_transfer_set
    from kdedge.train.pipeline import prepare_data

    num_classes = prepare_data(base, data_root).num_classes
    for recipe in recipes:
        check_transfer_set(recipe, num_classes)


def _run_unfinished(
    recipes: list[Recipe], paths: list[Path], data_root: str | None, jobs: int, progress=None
) -> list[str]:
    """Train the points not finished yet (recipes[i] into paths[i]): here one after another when jobs is
    1, else in `jobs` spawned processes; one progress task counts them."""
    todo = [i for i, path in enumerate(paths) if not is_finished(path)]
    task = progress.add_task(f"sweep: {len(todo)} of {len(paths)} runs to train", total=len(todo)) if progress else None
    if jobs == 1:
        for i in todo:
            check_stop(lambda: stopped_sweep_saved(paths[0].parent.parent))  # SIGTERM / Ctrl-C: between points
            _run_point(recipes[i].to_dict(), str(paths[i]), data_root, None, progress)
            if task is not None:
                progress.advance(task)
    else:
        _run_parallel([(recipes[i].to_dict(), str(paths[i])) for i in todo], data_root, jobs, progress, task)
    return []  # a failed point raised: the local backend stops at the first failure


def stopped_sweep_saved(sweep_dir: Path) -> str:
    """What a stopped sweep leaves: its finished points, and the point in flight's last checkpoint."""
    done = sum(1 for summary in sweep_dir.glob("**/summary.json") if is_finished(summary.parent))
    return f"{sweep_dir} ({done} finished runs; a point in flight keeps its last checkpoint)"


def _run_parallel(work: list[tuple[dict, str]], data_root: str | None, jobs: int, progress, task) -> None:
    """Points in `jobs` spawned processes, each with its share of the usable cores (runtime.threads.share:
    max(1, cores // jobs) threads, set in the worker before it imports torch)."""
    threads = share(jobs)
    with worker_pool(jobs, threads) as pool:
        futures = [pool.submit(_run_point, config, path, data_root, threads) for config, path in work]
        for future in futures:
            future.result()  # a failed point raises here, with its own one-line error
            if task is not None:
                progress.advance(task)


def worker_pool(jobs: int, threads: int) -> ProcessPoolExecutor:
    """`jobs` spawned processes with `threads` CPU threads each: OMP_NUM_THREADS & co. set in every worker
    before anything there imports torch."""
    return ProcessPoolExecutor(jobs, get_context("spawn"), initializer=limit_threads, initargs=(threads,))
