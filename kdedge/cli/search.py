"""`kdedge search`: parse, build its options object (kdedge.commands.options.SearchOptions), call kdedge.api;
`--show-space` prints the search space instead."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kdedge.cli.completion import recipe_names
from kdedge.cli.params import DataRootOption, QuietOption, SetOption, WideOption
from kdedge.cli.training import recipe_and_overrides
from kdedge.commands.options import SearchOptions

RAY = "ray: "  # help prefix of the options that apply to --backend ray only


def search(
    ctx: typer.Context,
    recipe: Annotated[
        str | None,
        typer.Argument(
            help="Recipe (data, teacher, the student's schedule): a file or a packaged name.",
            autocompletion=recipe_names,
        ),
    ] = None,
    target: Annotated[
        str | None, typer.Option("--target", help="FORMAT-PRECISION timed on this CPU: litert-int8, onnx-int8, ...")
    ] = None,
    latency_ms: Annotated[float | None, typer.Option("--latency-ms", help="Latency budget per call, ms.")] = None,
    size_mb: Annotated[float | None, typer.Option("--size-mb", help="File size budget, MB (10^6 bytes).")] = None,
    peak_mb: Annotated[
        float | None, typer.Option("--peak-mb", help="Peak memory budget, MiB above the bare runtime.")
    ] = None,
    percentile: Annotated[str, typer.Option("--percentile", help="The latency the budget bounds: p50 or p90.")] = "p50",
    threads: Annotated[int, typer.Option("--threads", help="Runtime threads when timing.")] = 1,
    batch: Annotated[int, typer.Option("--batch", help="Batch size when timing.")] = 1,
    overrides: SetOption = [],  # noqa: B006 - typer reads the default, never mutates it
    out: Annotated[Path | None, typer.Option("--out", help="Search folder (default runs/<recipe>_search).")] = None,
    space: Annotated[
        Path | None, typer.Option("--space", help="Search space YAML (default: the packaged one).")
    ] = None,
    show_space: Annotated[bool, typer.Option("--show-space", help="Print the search space and exit.")] = False,
    data_root: DataRootOption = None,
    backend: Annotated[
        str, typer.Option("--backend", help="Where candidates train: local, or ray (a task each).")
    ] = "local",
    address: Annotated[str | None, typer.Option("--address", help=RAY + "join this cluster (auto, HOST:PORT).")] = None,
    cpus: Annotated[int | None, typer.Option("--cpus", help=RAY + "CPUs of the Ray started here.")] = None,
    cpus_per_point: Annotated[float, typer.Option("--cpus-per-point", help=RAY + "CPUs per training.")] = 1.0,
    gpus_per_point: Annotated[float, typer.Option("--gpus-per-point", help=RAY + "GPUs per training.")] = 0.0,
    retries: Annotated[int, typer.Option("--retries", help=RAY + "retries of a training that crashed.")] = 2,
    hours: Annotated[
        float | None, typer.Option("--hours", help="No new training after this long; the best so far are measured.")
    ] = None,
    cost_cache: Annotated[
        Path | None,
        typer.Option("--cost-cache", help="Shared cost measurements (default $KDEDGE_CACHE/search_costs.json)."),
    ] = None,
    no_cost_cache: Annotated[bool, typer.Option("--no-cost-cache", help="Measure every candidate again.")] = False,
    seconds: Annotated[float, typer.Option("--seconds", help="Timed seconds per measurement, after warm-up.")] = 2.0,
    seeds: Annotated[
        int,
        typer.Option(
            "--seeds", help="Also train the pick and the recipe's student at this many seeds, measured alike."
        ),
    ] = 1,
    quiet: QuietOption = False,
    wide: WideOption = False,
) -> None:
    """The most accurate student whose file meets a latency (and size) budget on a target runtime: every
    candidate of the search space timed without training, the survivors distilled by successive halving,
    the finalists exported and measured for real.

    Interrupted? Rerun the same command: it resumes.
    """
    from kdedge import api

    if show_space:
        from kdedge.commands.search import show_space as print_space

        print_space(space)
        return
    if recipe is None:
        ctx.fail("Missing argument 'RECIPE'.")
    params = {k: v for k, v in ctx.params.items() if k != "show_space"}
    params["recipe"], params["overrides"] = recipe_and_overrides(ctx, recipe, overrides)
    api.search(SearchOptions(**params))
