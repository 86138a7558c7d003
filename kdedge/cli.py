"""The `kdedge` command. Parses, calls one function, prints. No logic; nothing imports this module."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from kdedge import __version__
from kdedge.console import console, error_console, make_progress, summary_table
from kdedge.errors import InputError, KdedgeError

app = typer.Typer(add_completion=True, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Distill large image classifiers into small ones for edge devices.")  # fmt: skip
recipes_app = typer.Typer(help="List or show the recipes shipped with kdedge.", invoke_without_command=True)
app.add_typer(recipes_app, name="recipes")

SetOption = Annotated[list[str], typer.Option("--set", help="Override a recipe key: a.b=value (repeatable).")]
OutOption = Annotated[Path | None, typer.Option("--out", help="Run directory (default runs/<recipe name>).")]
DataRootOption = Annotated[
    str | None, typer.Option("--data-root", help="Data folder (default $KDEDGE_DATA, else download to ~/.cache/kdedge).")
]
ForceOption = Annotated[bool, typer.Option("--force", help="Overwrite a finished run in --out.")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or tables.")]


def _version(value: bool) -> None:
    if value:
        console.print(f"kdedge {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True)] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
) -> None:
    if debug:
        os.environ["KDEDGE_DEBUG"] = "1"


def _default_out(name: str) -> Path:
    """runs/NAME, or runs/NAME-2, -3, ... when a finished run is already there (like Ultralytics' exp2)."""
    candidate, index = Path("runs") / name, 1
    while (candidate / "summary.json").exists():
        index += 1
        candidate = Path("runs") / f"{name}-{index}"
    return candidate


def _run(recipe_arg: str, overrides: list[str], out: Path | None, data_root: str | None, force: bool,
         quiet: bool, stages: tuple[str, ...]) -> None:  # fmt: skip
    from kdedge.checkpoint import RunDir
    from kdedge.pipeline import run_recipe
    from kdedge.recipe import load_recipe, parse_set

    recipe = load_recipe(recipe_arg, parse_set(overrides))
    if stages == ("teacher",) and recipe.teacher is None:
        raise InputError(f"{recipe_arg}: `kdedge train` trains the teacher, and this recipe has none; use distill")
    run = RunDir(out or _default_out(recipe.name)).open_for_writing(force)
    if not quiet:
        d = recipe.distillation
        console.print(f"[bold]{recipe.name}[/] -> {run.path}  (distillation: loss={d.loss}, alpha={d.soft_weight} "
                      f"= weight of the teacher term, T={d.temperature})")  # fmt: skip
    try:
        with make_progress(quiet) as progress:
            summary = run_recipe(recipe, run, data_root, stages, progress)
    finally:
        run.release()
    if not quiet:
        console.print(summary_table(summary, f"{recipe.name}: test set of {summary['data']['dataset']}"))
        console.print(f"run directory: {run.path}")


@app.command()
def distill(
    recipe: Annotated[str, typer.Argument(help="Recipe file or packaged recipe name.")],
    set_: SetOption = [],  # noqa: B006 - typer reads the default, never mutates it
    out: OutOption = None, data_root: DataRootOption = None, force: ForceOption = False, quiet: QuietOption = False,
) -> None:  # fmt: skip
    """Train the teacher (unless the recipe gives a checkpoint), then distill the student."""
    _run(recipe, set_, out, data_root, force, quiet, ("teacher", "student"))


@app.command()
def train(
    recipe: Annotated[str, typer.Argument(help="Recipe file or packaged recipe name.")],
    set_: SetOption = [],  # noqa: B006
    out: OutOption = None, data_root: DataRootOption = None, force: ForceOption = False, quiet: QuietOption = False,
) -> None:  # fmt: skip
    """Train the recipe's teacher only."""
    _run(recipe, set_, out, data_root, force, quiet, ("teacher",))


@app.command("eval")
def evaluate_run(
    run_dir: Annotated[Path, typer.Argument(help="A run directory.")],
    data_root: DataRootOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Re-evaluate a run's teacher and student on its recipe's test set."""
    from kdedge.evaluation import evaluate_run_dir

    summary = evaluate_run_dir(run_dir, data_root)
    if as_json:
        print(json.dumps(summary, indent=2))
    else:
        console.print(summary_table(summary, f"{run_dir}: re-evaluated"))


@recipes_app.callback()
def list_recipes(
    ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json", help="Machine-readable list.")] = False
) -> None:
    """List the packaged recipes, one line each."""
    if ctx.invoked_subcommand is not None:
        return
    from kdedge.recipe import packaged_recipes, read_yaml

    rows = {name: read_yaml(path).get("description", "") for name, path in sorted(packaged_recipes().items())}
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    for name, description in rows.items():
        console.print(f"[bold]{name:<32}[/] {description.strip().splitlines()[0] if description else ''}")


@recipes_app.command("show")
def show_recipe(name: Annotated[str, typer.Argument(help="Packaged recipe name or file.")]) -> None:
    """Print a recipe so you can copy and edit it."""
    from kdedge.recipe import find_recipe

    print(find_recipe(name).read_text(), end="")


def main() -> None:
    """Entry point: every KdedgeError becomes one line on stderr and its exit code (2 input, 1 runtime)."""
    try:
        app()
    except KdedgeError as err:
        if os.environ.get("KDEDGE_DEBUG"):
            raise
        error_console.print(f"error: {err}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        error_console.print("interrupted")
        sys.exit(130)
