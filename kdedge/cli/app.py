"""The `kdedge` Typer app: which commands there are (each a function in training.py, files.py or info.py that
builds its options object and calls kdedge.api or kdedge.commands), and main(), the entry point that turns
every error into one line. Nothing imports this module but kdedge.cli and kdedge.__main__.

A new command: its function in one of those modules (or a module of its own) and one line below.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from kdedge import __version__
from kdedge.cli import errors, files, info, search, study, training
from kdedge.errors import Diverged, Interrupted, KdedgeError
from kdedge.ui.console import console, error_console, say

# rich_markup_mode=None: help text prints as written ("kdedge-distill[tensorboard]" would lose its
# brackets to rich markup) and flags get no "<bool>" placeholder
app = typer.Typer(
    add_completion=True,
    invoke_without_command=True,  # bare `kdedge`: _root prints the help
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="Distill large image classifiers into small ones for edge devices.",
)
app.command(context_settings=training.SET_PAIRS)(training.distill)
app.command(context_settings=training.SET_PAIRS)(training.train)
app.command()(info.init)
app.command(context_settings=training.SET_PAIRS)(training.sweep)
app.command(context_settings=training.SET_PAIRS)(search.search)
app.command(context_settings=training.SET_PAIRS)(study.study)
app.command(context_settings=training.SET_PAIRS)(training.layers)
app.command()(files.report)
app.command("eval")(files.evaluate)
app.command()(files.export)
app.command()(files.predict)
app.command()(files.bench)
app.command()(files.check)
app.command()(info.formats)
app.add_typer(info.recipes_app, name="recipes")


def _version(value: bool) -> None:
    if value:
        console.print(f"kdedge {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
) -> None:
    if debug:
        os.environ["KDEDGE_DEBUG"] = "1"
    if ctx.invoked_subcommand is None and not ctx.resilient_parsing:  # no command given: what there is
        console.print(ctx.get_help(), markup=False, highlight=False)
        raise typer.Exit(2)


def main(argv: list[str] | None = None) -> None:
    """Entry point: every KdedgeError becomes one line on stderr and its exit code (2 input, 1 runtime).
    argv: the words after `kdedge` (default sys.argv[1:])."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        code = app(args=args, standalone_mode=False, prog_name="kdedge") or 0
        if code == 130:  # Typer's silent exit for a Ctrl-C outside a run (parsing, loading data)
            error_console.print("interrupted; nothing was written", markup=False, highlight=False)
        sys.exit(code)
    except Interrupted as err:
        say(errors.interrupted_line(err, args))
        sys.exit(err.exit_code)
    except Diverged as err:
        if os.environ.get("KDEDGE_DEBUG"):
            raise
        say(errors.diverged_line(err, args))
        sys.exit(err.exit_code)
    except typer.TyperException as err:  # click's usage errors (a typo'd option, a missing argument): one line
        context = getattr(err, "ctx", None)
        command = context.command_path if context else "kdedge"
        say(f"error: {command}: {err.format_message()} (see {command} --help)")
        sys.exit(getattr(err, "exit_code", 2))
    except KdedgeError as err:
        if os.environ.get("KDEDGE_DEBUG"):
            raise
        say(f"error: {err}")
        sys.exit(err.exit_code)
    except (KeyboardInterrupt, typer.Abort):
        error_console.print("interrupted")
        sys.exit(130)
