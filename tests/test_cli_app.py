"""kdedge.cli.app: every help text prints whole (square brackets included), words after `--set` that are not
KEY=VALUE pairs are usage errors, a bare `kdedge` prints the help. Fast: no training."""

from __future__ import annotations

import re

import pytest
import typer
from cli_helpers import one_error_line, run_kdedge


def _squash(text: str) -> str:
    """Help text without whitespace and box borders: what survives any wrapping rich does."""
    return re.sub(r"[\s│╭╮╰╯─]+", "", text)


def _commands() -> list[tuple[list[str], object]]:
    """(argv prefix, command) of every command and sub-command of `kdedge`."""
    from kdedge.cli import app

    found, todo = [], [([], typer.main.get_command(app))]
    while todo:
        path, command = todo.pop()
        found.append((path, command))
        if hasattr(command, "commands"):  # a group (typer vendors its own click: no isinstance)
            todo += [([*path, name], sub) for name, sub in command.commands.items()]
    return found


def _help(argv: list[str]) -> str:
    from typer.testing import CliRunner

    from kdedge.cli import app

    result = CliRunner().invoke(app, [*argv, "--help"], env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    return result.output


def test_every_help_text_prints_its_square_brackets_and_text() -> None:
    """Rich markup ate `[tensorboard]` from `kdedge-distill[tensorboard]`: every help string prints whole."""
    checked = 0
    for argv, command in _commands():
        shown = _squash(_help(argv))
        texts = [command.help or ""] + [getattr(p, "help", None) or "" for p in command.params]
        for text in texts:
            first_paragraph = text.split("\n\n")[0]
            where = f"kdedge {' '.join(argv)} --help"
            assert _squash(first_paragraph) in shown, f"{where} lost: {first_paragraph}"
            checked += "[" in text
    assert checked >= 2  # --tensorboard and --int8-method name an extra in brackets


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["distill", "hinton_mnist", "b=2"], "Got unexpected extra argument (b=2)"),
        (["distill", "hinton_mnist", "--set", "a=1", "other"], "Got unexpected extra argument (other)"),
        (["distill", "--set", "a=1", "b=2"], "Missing argument 'RECIPE'"),
    ],
)
def test_words_after_set_that_are_not_pairs_are_usage_errors(argv: list[str], expected: str) -> None:
    code, _, err = run_kdedge(*argv)
    assert code == 2 and expected in one_error_line(err), err


def test_bare_kdedge_prints_the_help_and_exits_2() -> None:
    code, out, _ = run_kdedge()
    assert code == 2 and "Commands:" in out and "distill" in out
