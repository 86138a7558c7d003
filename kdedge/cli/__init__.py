"""The command line: the Typer app (app.py: options and help, one function per command, each calling
kdedge.commands) and shell completion (completion.py). Nothing imports this package but kdedge.__main__."""

from kdedge.cli.app import app, expand_set_pairs, main

__all__ = ["app", "expand_set_pairs", "main"]
