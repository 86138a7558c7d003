"""`kdedge study`: parse, build its options object (kdedge.commands.options.StudyOptions), call kdedge.api.

`--seeds 0 1` and `--set a=1 b=2`: click gives an option one value per use, so the words after the first
arrive with the positional ones; split_words() hands the integers back to --seeds and the KEY=VALUE words
back to --set (when those options were given), the rest are the study file or the recipes.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from kdedge.cli.completion import recipe_names
from kdedge.cli.params import DataRootOption, QuietOption, SetOption, WideOption
from kdedge.cli.training import is_pair
from kdedge.commands.options import StudyOptions
from kdedge.errors import InputError


def split_words(words: list[str], seeds: list[str], sets: list[str]) -> tuple[list[str], list[str], list[str]]:
    """(targets, seeds, sets): integers after a --seeds are seeds, KEY=VALUE words after a --set are sets."""
    targets, more_seeds, more_sets = [], [], []
    for word in words:
        if seeds and re.fullmatch(r"\d+(,\d+)*", word) and not Path(word).exists():
            more_seeds.append(word)
        elif is_pair(word):
            if not sets:
                raise InputError(f"study: '{word}' looks like a recipe override; write --set {word}")
            more_sets.append(word)
        else:
            targets.append(word)
    return targets, [*seeds, *more_seeds], [*sets, *more_sets]


def parse_seeds(words: list[str]) -> tuple[int, ...] | None:
    """['0', '1,2'] -> (0, 1, 2); None when no --seeds was given."""
    if not words:
        return None
    try:
        return tuple(int(part) for word in words for part in word.split(",") if part.strip())
    except ValueError:
        raise InputError(f"--seeds {' '.join(words)}: give whole numbers, e.g. --seeds 0 1 2") from None


def study(
    ctx: typer.Context,
    targets: Annotated[
        list[str] | None,
        typer.Argument(help="A study file (NAME.yaml with a recipes: list), or recipes.", autocompletion=recipe_names),
    ] = None,
    seeds: Annotated[list[str], typer.Option("--seeds", help="Seeds of every row: --seeds 0 1 2 (default 0).")] = [],  # noqa: B006
    overrides: SetOption = [],  # noqa: B006 - typer reads the default, never mutates it
    variants: Annotated[
        list[str],
        typer.Option(
            "--variant",
            help="A table row: 'NAME: KEY=VALUE ...' (repeatable), e.g. 'dkd: distillation.loss=dkd'.",
        ),
    ] = [],  # noqa: B006
    grid: Annotated[list[str], typer.Option("--grid", help="KEY=V1,V2: a row per value (repeatable).")] = [],  # noqa: B006
    baseline: Annotated[
        bool | None,
        typer.Option("--baseline/--no-baseline", help="Train the no-KD student beside each KD row (default: yes)."),
    ] = None,
    metric: Annotated[
        str | None,
        typer.Option("--metric", help="test_accuracy (default), test_errors, val_accuracy or test_qwk."),
    ] = None,
    title: Annotated[str | None, typer.Option("--title", help="The table's title.")] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Study folder (default runs/<study file> or runs/<recipe>_study).")
    ] = None,
    json_file: Annotated[
        Path | None, typer.Option("--json", help="Also write the table file here (e.g. bench/results/NAME.json).")
    ] = None,
    data_root: DataRootOption = None,
    table_only: Annotated[
        bool, typer.Option("--table-only", help="Train nothing: tabulate the runs that finished.")
    ] = False,
    quiet: QuietOption = False,
    wide: WideOption = False,
) -> None:
    """Recipes x seeds x rows, each KD row beside the same student trained without KD: mean, spread and the
    difference per seed, in one table (STUDY/study.json, study.md). Each seed's teacher is trained once.

    Interrupted? Rerun the same command: finished runs are read, not trained again.
    """
    from kdedge import api

    words, seed_words, sets = split_words([*(targets or []), *ctx.args], list(seeds), list(overrides))
    if not words:
        ctx.fail("Missing argument 'TARGETS...' (a study file, or recipes).")
    params = {k: v for k, v in ctx.params.items() if k not in ("targets", "seeds", "overrides", "json_file")}
    seeds_given = parse_seeds(seed_words)
    api.study(StudyOptions(tuple(words), seeds_given, tuple(sets), json=json_file, **params))
