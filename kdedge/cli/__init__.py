"""The command line: the Typer app and its entry point (app.py), the commands' functions (training.py:
distill, train, sweep; files.py: eval, report, export, bench, predict; info.py: recipes, formats, init),
shared options (params.py), error lines (errors.py) and shell completion (completion.py). Each command builds
its options object (kdedge.commands.options) and calls kdedge.api. Nothing imports this package but
kdedge.__main__."""

from kdedge.cli.app import app, main

__all__ = ["app", "main"]
