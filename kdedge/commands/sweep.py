"""`kdedge sweep RECIPE --grid KEY=V1,V2`: one teacher, one student per grid point (kdedge.experiments.sweep);
the rows as a table on screen."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from kdedge.console import console, make_progress
from kdedge.errors import InputError
from kdedge.experiments.sweep import check_grid, grid_points, parse_grid, run_sweep
from kdedge.experiments.sweep_results import baseline_value, cell, column_cell, result_files
from kdedge.recipe import Recipe, load_recipe, parse_set

METRICS = ("test_errors", "test_accuracy", "val_accuracy")


def sweep_command(recipe: str, grid: list[str], set_: list[str], out: Path | None, data_root: str | None,
                  jobs: int, quiet: bool, metric: str | None) -> list[dict]:  # fmt: skip
    """Load RECIPE with --set overrides and sweep it into --out (default runs/<recipe>_sweep)."""
    if metric not in (None, *METRICS):
        raise InputError(f"--metric '{metric}': allowed are {', '.join(METRICS)}")
    loaded = load_recipe(recipe, parse_set(set_))
    sweep_dir = out or Path("runs") / f"{loaded.name}_sweep"
    return run_sweep_recipe(loaded, grid, sweep_dir, data_root, jobs, quiet, metric)  # fmt: skip


def run_sweep_recipe(
    base: Recipe,
    grid_items: list[str],
    sweep_dir: Path,
    data_root: str | None,
    jobs: int,
    quiet: bool,
    metric: str | None = None,
) -> list[dict]:
    """What `kdedge sweep` (and `kdedge distill` of a recipe with a sweep section) does: the recipe's
    sweep.grid, updated by --grid axes, run into sweep_dir with progress; the table on screen."""
    metric = metric or (base.sweep.metric if base.sweep else "test_errors")
    grid = dict(base.sweep.grid) if base.sweep else {}
    grid |= parse_grid(grid_items)
    check_grid(grid)
    if not quiet:
        console.print(f"[bold]{base.name}[/] sweep of {len(grid_points(grid))} points -> {sweep_dir}")
    with make_progress(quiet) as progress:
        rows = run_sweep(base, grid, sweep_dir, data_root, jobs, metric, progress if jobs == 1 else None)
    if not quiet and rows:
        baseline = baseline_value(sweep_dir / "baseline", metric)  # the one of an alpha x temperature grid
        no_kd = f"; no KD: {metric} {cell(baseline)}" if baseline is not None else ""
        console.print(_rows_table(rows, metric, f"{base.name}: sweep, best first{no_kd}"))
        console.print(f"sweep directory: {sweep_dir} ({', '.join(result_files(sweep_dir, grid))})")
    return rows


def _rows_table(rows: list[dict], metric: str, title: str) -> Table:
    """The sweep's rows as a rich table, with short column names: 'distillation.temperature' ->
    'temperature' (the table must fit a terminal)."""
    from rich.table import Table

    table = Table(title=title)
    for column in rows[0]:
        label = f"{metric} (sorted)" if column == metric else column.split(".")[-1].replace("_test_", " ")
        table.add_column(label.replace("_", " "), justify="right")
    for row in rows:
        table.add_row(*(column_cell(column, row.get(column)) for column in rows[0]))
    return table
