"""The docs: every `kdedge ...` line in README and docs/*.md code blocks and in the packaged recipes'
descriptions parses, its recipe and --set values load, and those that train nothing run; and the text
users read names dates, commands and features, never internal bookkeeping ("session 3", "issue 17")."""

from __future__ import annotations

import functools
import re
from pathlib import Path

import pytest
import typer
from cli_helpers import run_kdedge

REPO = Path(__file__).resolve().parents[1]
TRAINS = ("distill", "train", "sweep")  # parsed and their recipe + --set values loaded, not trained here
RUN_FOR_REAL = ("recipes", "--version", "eval", "report")  # cheap: run on a copy of a finished tiny run
BOOKKEEPING = re.compile(r"\b(session|issue)s?\s+#?\d+", re.I)  # "session 2", "Issue 11", "issues 3, 4"
USER_TEXT = (  # what users read: the docs (archive included), code, recipes, studies, bench scripts and results
    "README.md",
    "docs/**/*.md",
    "kdedge/**/*.py",
    "kdedge/recipes/*.yaml",
    "studies/*.yaml",
    "bench/**/*.py",
    "bench/**/*.yaml",
    "bench/results/*.json",
)


def _documented_commands() -> list[tuple[str, list[str]]]:
    """(where, argv after `kdedge`) of every `kdedge ...` line in README / docs code blocks and every
    `kdedge ...` or `--set ...` in a packaged recipe's description (a --set runs with its recipe)."""
    import shlex

    import yaml

    found = []
    for path in [REPO / "README.md", *sorted(REPO.glob("docs/*.md"))]:
        blocks = re.findall(r"^```(\w*)\n(.*?)^```", path.read_text(), re.S | re.M)
        for language, block in blocks:
            if language not in ("", "bash", "sh", "console"):
                continue
            for line in block.replace("\\\n", " ").splitlines():
                for part in line.split("&&"):
                    if not part.strip().startswith("kdedge "):
                        continue  # output shown in a block, make, export ...
                    words = shlex.split(part, comments=True)
                    if words[:1] == ["kdedge"]:
                        cut = next((i for i, w in enumerate(words) if w in (">", "|")), len(words))
                        argv = [w for w in words[1:cut] if w != "..."]  # "...": the docs' "and so on"
                        found.append((f"{path.name}: {part.strip()}", argv))
    for recipe in sorted((REPO / "kdedge" / "recipes").glob("*.yaml")):
        text = " ".join(str(yaml.safe_load(recipe.read_text()).get("description", "")).split())
        for command in re.findall(r"`kdedge ([^`]+)`", text):
            found.append((f"{recipe.name}: kdedge {command}", shlex.split(command)))
        for pairs in re.findall(r"--set((?:\s+[A-Za-z_][\w.]*=[^\s(),;`]+)+)", text):
            found.append((f"{recipe.name}: --set{pairs}", ["distill", recipe.stem, "--set", *pairs.split()]))
    return found


@functools.cache
def _cli_group() -> typer.core.TyperGroup:
    """The real CLI parser (the Click group Typer builds from kdedge.cli.app), built once: ~25 ms a build."""
    from kdedge.cli import app

    return typer.main.get_command(app)


def _parse(argv: list[str]) -> tuple[str, dict]:
    """(command name, its parsed parameters) from the real CLI parser; for the training commands, "recipe"
    and "overrides" as the command reads them (the KEY=VALUE words after a --set included)."""
    from kdedge.cli.training import recipe_and_overrides

    group = _cli_group()
    if argv[0].startswith("--"):
        return argv[0], {}
    parent = group.make_context("kdedge", list(argv), resilient_parsing=False)
    words = [*getattr(parent, "_protected_args", []), *parent.args]  # the sub-command and its words
    name, command, rest = group.resolve_command(parent, words)
    if hasattr(command, "commands") and rest and rest[0] in command.commands:  # recipes show NAME
        name, command, rest = f"{name} {rest[0]}", command.commands[rest[0]], rest[1:]
    context = command.make_context(name, rest, parent=parent)
    params = dict(context.params)
    if name in TRAINS:
        params["recipe"], params["overrides"] = recipe_and_overrides(context, params["recipe"], params["overrides"])
    return name, params


def test_every_documented_command_parses_and_its_recipe_loads(monkeypatch) -> None:
    """README's code blocks and the recipes' descriptions, as a newcomer would paste them (the aptos
    descriptions gave `--set a=false b=false`): the CLI parses each, and each training command's recipe
    with its --set values loads (training itself is left out: hours)."""
    from kdedge.recipe import load_recipe
    from kdedge.recipe.overrides import parse_set

    monkeypatch.chdir(REPO)  # README runs from the clone: recipes/hinton_mnist_800.yaml
    commands = _documented_commands()
    assert len(commands) >= 20 and any("aptos" in where for where, _ in commands)
    for where, argv in commands:
        if "--install-completion" in argv:
            continue  # would change the user's shell files
        try:
            name, params = _parse(argv)
        except Exception as err:  # noqa: BLE001 - say which documented command
            pytest.fail(f"{where}: {err}")
        if name in TRAINS and params["recipe"] != "my.yaml":  # my.yaml: written by `recipes show > my.yaml`
            try:
                load_recipe(params["recipe"], parse_set(params["overrides"]))
            except Exception as err:  # noqa: BLE001 - the message names the command that failed
                pytest.fail(f"{where}: {err}")


def test_documented_commands_that_train_nothing_run(finished_run, data_root: Path, tmp_path: Path) -> None:
    """recipes, --version, eval and report as documented, with runs/NAME a copy of a finished tiny run. A
    command documented in several places (README and the guide, `report RUN` under three run names) runs once,
    its first place named when it fails."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(finished_run[0], run)
    commands: dict[tuple[str, ...], str] = {}  # the command as run -> where it is first documented
    for where, argv in _documented_commands():
        if argv[0] in RUN_FOR_REAL:
            commands.setdefault(tuple(str(run) if a.startswith("runs/") or a == "RUN" else a for a in argv), where)
    for args, where in commands.items():
        extra = ["--data-root", str(data_root)] if args[0] == "eval" else []
        code, out, err = run_kdedge(*args, *extra)
        assert code == 0, f"{where}: {err}"
    assert len(commands) >= 5


def test_user_text_names_no_session_or_issue_numbers() -> None:
    """Docs, code, recipes and result files speak in dates, commands and features: a "session 2" or
    "issue 11" (the project's internal bookkeeping) fails here, with file and line."""
    found = []
    for pattern in USER_TEXT:
        for path in sorted(REPO.glob(pattern)):
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if BOOKKEEPING.search(line):
                    found.append(f"{path.relative_to(REPO)}:{number}: {line.strip()[:120]}")
    assert len(list(REPO.glob("docs/archive/*.md"))) >= 1  # the archive is scanned too
    assert not found, "\n".join(found)
