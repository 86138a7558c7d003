"""`kdedge sweep RECIPE --grid KEY=V1,V2`: one teacher, one student per grid point (kdedge.experiments.sweep),
here or on Ray (kdedge.experiments.sweep_ray); the rows as a table on screen."""

from __future__ import annotations

import json
from pathlib import Path

from rich.table import Table

from kdedge.commands.options import SweepOptions
from kdedge.errors import InputError
from kdedge.experiments.sweep import check_grid, parse_grid, planned_baselines, run_sweep
from kdedge.experiments.sweep_ray import RayOptions, import_ray
from kdedge.experiments.sweep_results import baseline_value, cell, column_cell, result_files
from kdedge.recipe import Recipe, load_recipe, parse_set
from kdedge.recipe.grid import grid_points
from kdedge.ui.console import console, make_progress, print_table, table_width
from kdedge.ui.tables import Column, fitted_table

METRICS = ("test_errors", "test_accuracy", "val_accuracy")


def sweep_command(options: SweepOptions) -> list[dict]:
    """Load the recipe with its --set overrides and sweep it into --out (default runs/<recipe>_sweep), here
    or on Ray (options.backend)."""
    if options.metric not in (None, *METRICS):
        raise InputError(f"--metric '{options.metric}': allowed are {', '.join(METRICS)}")
    ray_options = backend_options(options)  # None for local (where ray-only options are refused)
    loaded = load_recipe(options.recipe, parse_set(list(options.overrides)))
    sweep_dir = options.out or Path("runs") / f"{loaded.name}_sweep"
    return run_sweep_recipe(
        loaded,
        list(options.grid),
        sweep_dir,
        options.data_root,
        options.jobs,
        options.quiet,
        options.metric,
        ray_options,
    )


def run_sweep_recipe(
    base: Recipe,
    grid_items: list[str],
    sweep_dir: Path,
    data_root: str | None,
    jobs: int,
    quiet: bool,
    metric: str | None = None,
    ray_options=None,
) -> list[dict]:
    """What `kdedge sweep` (and `kdedge distill` of a recipe with a sweep section) does: the recipe's
    sweep.grid, updated by --grid axes, run into sweep_dir with progress; the table on screen.
    `ray_options` (kdedge.experiments.sweep_ray.RayOptions): run the points on Ray instead of here."""
    metric = metric or (base.sweep.metric if base.sweep else "test_errors")
    grid = dict(base.sweep.grid) if base.sweep else {}
    grid |= parse_grid(grid_items)
    check_grid(grid)
    if not quiet:
        extra = len(planned_baselines(base, grid, None, sweep_dir)[0])  # the runs the progress bar counts too
        also = f" + {extra} no-KD baseline run{'s' if extra > 1 else ''}" if extra else ""
        console.print(f"[bold]{base.name}[/] sweep of {len(grid_points(grid))} points{also} -> {sweep_dir}")
    runner = None
    if ray_options is not None:
        from functools import partial

        from kdedge.experiments.sweep_ray import run_points

        runner = partial(run_points, sweep_dir=sweep_dir, options=ray_options, metric=metric)
    with make_progress(quiet) as progress:
        shown = progress if jobs == 1 or runner else None  # one display; pool workers show none
        rows = run_sweep(base, grid, sweep_dir, data_root, jobs, metric, shown, runner)
    if not quiet and rows:
        folders = json.loads((sweep_dir / "sweep.json").read_text()).get("baselines", [])
        baseline = baseline_value(sweep_dir / folders[0], metric) if len(folders) == 1 else None
        no_kd = f"; no KD: {metric} {cell(baseline)}" if baseline is not None else ""
        width = table_width()
        print_table(_rows_table(rows, metric, f"{base.name}: sweep, best first{no_kd}", width), width)
        console.print(f"sweep directory: {sweep_dir} ({', '.join(result_files(sweep_dir, grid))})")
    return rows


HEADERS = {
    "student_test_errors": "errors before fix",
    "student_test_accuracy": "acc",
    "train_seconds": "train s",
    "errors_vs_no_kd": "errors vs no KD",
    "test_accuracy_vs_no_kd": "acc vs no KD",
    "val_accuracy_vs_no_kd": "val acc vs no KD",
    "fixed_test_errors": "fixed errors",
}


DROP = {"student_test_accuracy": 2, "student_test_errors": 2}  # hidden last of the details


def _rows_table(rows: list[dict], metric: str, title: str, width: int = 200) -> Table:
    """The sweep's rows fitted to `width` (kdedge.ui.tables): the grid values name a row and stay whole, under
    short names ('distillation.temperature' -> 'temperature'); the bias-fix details go first."""
    columns, keys = [], list(dict.fromkeys(key for row in rows for key in row))
    for key in keys:
        grid_key = "." in key
        header = key.split(".")[-1] if grid_key else HEADERS.get(key, key.replace("_", " "))
        header = f"{header} (sorted)" if key == metric else header
        kept = grid_key or key == metric or key.endswith("_vs_no_kd")  # what the sweep is about
        columns.append(Column(header, key=grid_key, drop=0 if kept else DROP.get(key, 1)))
    cells = [[column_cell(key, row.get(key)) for key in keys] for row in rows]
    return fitted_table(title, columns, cells, width, more="sweep.csv")


def backend_options(options: SweepOptions) -> RayOptions | None:
    """--backend and its options: None for local (ray options refused there), else checked RayOptions;
    Ray missing is said here, before any work."""
    backend, address, cpus, jobs = options.backend, options.address, options.cpus, options.jobs
    cpus_per_point, gpus_per_point, retries = options.cpus_per_point, options.gpus_per_point, options.retries
    if backend not in ("local", "ray"):
        raise InputError(f"--backend '{backend}': allowed are local, ray")
    if backend == "local":
        ray_only = {
            "--address": address is not None,
            "--cpus": cpus is not None,
            "--retries": retries != 2,
            "--cpus-per-point": cpus_per_point != 1,
            "--gpus-per-point": gpus_per_point != 0,
        }
        if given := [name for name, set_ in ray_only.items() if set_]:
            raise InputError(f"{given[0]} applies to --backend ray only")
        return None
    if jobs != 1:
        raise InputError("--jobs sizes the local backend's process pool; with --backend ray give --cpus-per-point")
    import_ray()
    options = RayOptions(address, cpus, cpus_per_point, gpus_per_point, retries)
    check_options(options)
    return options


def check_options(options: RayOptions) -> None:
    """Bad numbers or an address with --cpus are bad input, said before Ray starts."""
    if options.cpus is not None and options.cpus < 1:
        raise InputError(f"--cpus must be >= 1 (got {options.cpus})")
    if options.cpus is not None and options.address:
        raise InputError("--cpus sizes the Ray started here; a cluster (--address) has its own CPUs")
    if options.cpus_per_point <= 0 or options.gpus_per_point < 0:
        raise InputError(
            f"--cpus-per-point must be > 0 and --gpus-per-point >= 0 (got "
            f"{options.cpus_per_point:g}, {options.gpus_per_point:g})"
        )
    if options.retries < 0:
        raise InputError(f"--retries must be >= 0 (got {options.retries})")
    if options.address and options.address != "auto" and ":" not in options.address:
        raise InputError(f"--address '{options.address}': give auto, HOST:PORT or ray://HOST:PORT")
