"""`kdedge distill`, `kdedge train` (distill stopped after the teacher), `kdedge sweep`: parse, build the
command's options object (kdedge.commands.options), call kdedge.api. `kdedge layers` (a recipe's layer names
for feature methods) takes a recipe and --set values as they do.

`--set a=1 b=2`: click gives an option one value, so the KEY=VALUE words after it arrive as extra arguments
of the command (context_settings allow_extra_args) and recipe_and_overrides() puts them back with --set.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from kdedge.cli.params import (
    CheckpointMinutesOption,
    DataRootOption,
    ForceOption,
    OutOption,
    QuietOption,
    RecipeArgument,
    ResumeOption,
    SetOption,
    SkipBadOption,
    TensorBoardOption,
    ThreadsOption,
)
from kdedge.commands.options import BOTH_STAGES, DistillOptions, SweepOptions

SET_PAIRS = {"allow_extra_args": True}  # the commands' context_settings: see the module docstring
ASSIGNMENT = re.compile(r"[A-Za-z_]\w*(\.\w+)*=")


def is_pair(word: str) -> bool:
    """KEY=VALUE, and not a file that happens to hold '=' in its name (a recipe path)."""
    return bool(ASSIGNMENT.match(word)) and not Path(word).exists()


def recipe_and_overrides(ctx: typer.Context, recipe: str, overrides: list[str]) -> tuple[str, list[str]]:
    """The recipe and every --set value: the KEY=VALUE words written after a --set's value are more of them
    (applied after the --set values, in their order); when the recipe came after them, click handed the
    first such word over as the recipe. Anything else left over is a usage error, as click would say it."""
    words = [recipe, *ctx.args]
    pairs = [word for word in words if is_pair(word)]
    others = [word for word in words if not is_pair(word)]
    if pairs and not overrides:  # KEY=VALUE words with no --set before them
        others = words
    if not others:
        ctx.fail("Missing argument 'RECIPE'.")
    if len(others) > 1:
        extra = others[1:]
        ctx.fail(f"Got unexpected extra argument{'s' if len(extra) > 1 else ''} ({' '.join(extra)})")
    return others[0], [*overrides, *(pairs if overrides else [])]


def distill(
    ctx: typer.Context,
    recipe: RecipeArgument,
    overrides: SetOption = [],  # noqa: B006 - typer reads the default, never mutates it
    out: OutOption = None,
    data_root: DataRootOption = None,
    force: ForceOption = False,
    quiet: QuietOption = False,
    resume: ResumeOption = None,
    checkpoint_minutes: CheckpointMinutesOption = 30.0,
    tensorboard: TensorBoardOption = False,
    skip_bad_images: SkipBadOption = False,
    threads: ThreadsOption = None,
) -> None:
    """Train the teacher (unless the recipe gives a checkpoint), then distill the student."""
    from kdedge import api

    api.distill(_distill_options(ctx, BOTH_STAGES))


def train(
    ctx: typer.Context,
    recipe: RecipeArgument,
    overrides: SetOption = [],  # noqa: B006
    out: OutOption = None,
    data_root: DataRootOption = None,
    force: ForceOption = False,
    quiet: QuietOption = False,
    resume: ResumeOption = None,
    checkpoint_minutes: CheckpointMinutesOption = 30.0,
    tensorboard: TensorBoardOption = False,
    skip_bad_images: SkipBadOption = False,
    threads: ThreadsOption = None,
) -> None:
    """Train the recipe's teacher only."""
    from kdedge import api

    api.train(_distill_options(ctx, ("teacher",)))


def _distill_options(ctx: typer.Context, stages: tuple[str, ...]) -> DistillOptions:
    """distill and train take the same options (their signatures are Typer's help); train stops earlier."""
    params = dict(ctx.params)
    params["recipe"], params["overrides"] = recipe_and_overrides(ctx, params["recipe"], params["overrides"])
    return DistillOptions(**params, stages=stages)


def sweep(
    ctx: typer.Context,
    recipe: RecipeArgument,
    grid: Annotated[list[str], typer.Option("--grid", help="KEY=V1,V2,... a grid axis (repeatable).")] = [],  # noqa: B006
    overrides: SetOption = [],  # noqa: B006
    out: Annotated[Path | None, typer.Option("--out", help="Folder (default runs/<recipe>_sweep).")] = None,
    data_root: DataRootOption = None,
    quiet: QuietOption = False,
    jobs: Annotated[int, typer.Option("--jobs", help="Points trained in parallel processes.")] = 1,
    metric: Annotated[str | None, typer.Option("--metric", help="test_errors or *_accuracy")] = None,
    backend: Annotated[
        str,
        typer.Option(
            "--backend",
            help="local (this machine; --jobs) or ray (one Ray task per point; pip install 'kdedge-distill[ray]').",
        ),
    ] = "local",
    address: Annotated[
        str | None,
        typer.Option(
            "--address",
            help="ray: join a running cluster (auto, "
            "HOST:PORT or ray://HOST:PORT); default: start Ray on this machine.",
        ),
    ] = None,
    cpus: Annotated[int | None, typer.Option("--cpus", help="ray: CPUs of the Ray started here.")] = None,
    cpus_per_point: Annotated[float, typer.Option("--cpus-per-point", help="ray: CPUs per point.")] = 1.0,
    gpus_per_point: Annotated[
        float, typer.Option("--gpus-per-point", help="ray: GPUs per point (0.5: two points share one).")
    ] = 0.0,
    retries: Annotated[
        int,
        typer.Option(
            "--retries",
            help="ray: retries of a point that crashed or lost "
            "its node (a bad config or NaN loss is reported, not retried).",
        ),
    ] = 2,
) -> None:
    """Train the teacher once, then one student per grid point.

    Interrupted? Rerun the same command (same --out): it resumes the sweep, skipping finished points.
    """
    from kdedge import api

    params = dict(ctx.params)
    params["recipe"], params["overrides"] = recipe_and_overrides(ctx, recipe, overrides)
    api.sweep(SweepOptions(**params))


def layers(
    ctx: typer.Context,
    recipe: RecipeArgument,
    overrides: SetOption = [],  # noqa: B006
    data_root: DataRootOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable list.")] = False,
) -> None:
    """The layer names of the recipe's teacher and student, with type and output shape per image: what
    distillation.features pairs name (feature methods: fitnets, at)."""
    from kdedge.commands.layers import layers_command

    recipe, overrides = recipe_and_overrides(ctx, recipe, overrides)
    layers_command(recipe, overrides, data_root, as_json)
