"""What a study runs: recipes x seeds x rows (named variants and/or a grid), each beside its no-KD baseline.

Given on the command line (`kdedge study RECIPE... --seeds 0 1 --variant ... --grid ...`) or as a study file
(`kdedge study NAME.yaml`), whose keys are the command's options:

    title: "Distillation methods on the CIFAR-10 subset"   # the table's title (default: from the recipes)
    recipes:                        # names or files; an entry may carry its own --set values and label
      - cifar10_r18_smallcnn
      - {recipe: cifar10_resnet50, set: [data.train_limit=400], label: r50}
    seeds: [0, 1]
    set: [student.epochs=10]        # every run; `{seed}` in teacher.checkpoint (or student.checkpoint) is
                                    # the run's seed: teacher.checkpoint=runs/teacher-s{seed} loads each
                                    # seed's own teacher, trained beforehand
    variants:                       # one table row each: NAME -> its --set values ([]: the recipe as it is)
      KD: []
      DKD: [distillation.loss=dkd, distillation.temperature=4]
    grid: {distillation.temperature: [2, 4]}   # or rows from a grid (crossed with the variants)
    baseline: true                  # the no-KD student beside each KD row (distillation.loss: none)
    metric: test_accuracy           # test_accuracy | test_errors | val_accuracy | test_qwk

Light (no torch): the command checks a study before anything trains.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from kdedge.errors import InputError
from kdedge.recipe import parse_set, read_yaml
from kdedge.recipe.grid import Grid

METRICS = ("test_accuracy", "test_errors", "val_accuracy", "test_qwk")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")  # a row or entry name is a folder name too


class Entry(BaseModel):
    """One recipe of the study, with the --set values of its runs only and the label its rows carry."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    recipe: str
    set: tuple[str, ...] = ()
    label: str | None = None

    @property
    def name(self) -> str:
        """Its label, else the recipe's file stem or packaged name."""
        return self.label or Path(self.recipe).stem


class StudySpec(BaseModel):
    """A study, checked: see the module docstring for the meaning of each key."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    title: str | None = None
    recipes: tuple[Entry, ...] = Field(min_length=1)
    seeds: tuple[int, ...] = (0,)
    set: tuple[str, ...] = ()
    variants: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    baseline: bool = True
    metric: Literal["test_accuracy", "test_errors", "val_accuracy", "test_qwk"] = "test_accuracy"
    order: int = 100  # position of its table in docs/results.md

    @field_validator("recipes", mode="before")
    @classmethod
    def _entries(cls, value: Any) -> Any:
        """A bare name is an entry with no --set values of its own."""
        items = [value] if isinstance(value, str) else value
        return [{"recipe": item} if isinstance(item, str) else item for item in items]

    @field_validator("variants")
    @classmethod
    def _variant_names(cls, value: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        for name, sets in value.items():
            check_name(name, "variant")
            parse_set(list(sets))  # KEY=VALUE each; keys are checked when the recipes load
        return value

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or len(set(value)) != len(value):
            raise ValueError(f"give at least one seed, each once (got {list(value)})")
        return value

    def entry_names(self) -> list[str]:
        """Each entry's name; two entries of one recipe need labels that tell them apart."""
        names = [check_name(entry.name, "recipe label") for entry in self.recipes]
        if len(set(names)) != len(names):
            twice = sorted({n for n in names if names.count(n) > 1})
            raise InputError(f"study: recipes {', '.join(twice)} appear twice; give each a label (label: NAME)")
        return names

    def grid_values(self) -> Grid:
        return {key: list(values) for key, values in self.grid.items()}


def check_name(name: str, what: str) -> str:
    """A name that is also a folder name: letters, digits and . _ + - (not starting with a dot)."""
    if not NAME.fullmatch(name):
        raise InputError(f"study: {what} '{name}': use letters, digits and . _ + - only (it names a folder)")
    return name


def parse_variant(text: str) -> tuple[str, tuple[str, ...]]:
    """--variant 'dkd: distillation.loss=dkd distillation.temperature=4' -> ('dkd', (KEY=VALUE, ...)); quotes
    keep a value with spaces whole ('at: "distillation.layers=[{student: a, teacher: b}]"')."""
    name, sep, rest = text.partition(":")
    try:
        sets = tuple(shlex.split(rest))
    except ValueError as err:
        raise InputError(f"--variant '{text}': {err}") from None
    if not sep or not name.strip():
        raise InputError(f"--variant '{text}': expected 'NAME: KEY=VALUE ...', e.g. 'dkd: distillation.loss=dkd'")
    parse_set(list(sets))
    return check_name(name.strip(), "variant"), sets


def spec_from(config: dict[str, Any], source: str) -> StudySpec:
    """A StudySpec from a dict (a study file's content, or the command line's options); every problem in one
    line naming its key."""
    try:
        return StudySpec.model_validate(config)
    except ValidationError as err:
        problems = []
        for error in err.errors():
            where = ".".join(str(part) for part in error["loc"]) or "study"
            message = error["msg"].removeprefix("Value error, ")
            problems.append(f"{where}: {'unknown key' if error['type'] == 'extra_forbidden' else message}")
        raise InputError(f"{source}: " + "; ".join(problems)) from None


def is_study_file(word: str) -> bool:
    """A YAML file with a `recipes:` key is a study; a recipe has `data:` instead."""
    path = Path(word)
    if path.suffix not in (".yaml", ".yml") or not path.is_file():
        return False
    return "recipes" in read_yaml(path)


def read_study_file(path: Path) -> dict[str, Any]:
    """The study file's keys, with recipe files named relative to it made absolute (as a recipe's paths)."""
    config = read_yaml(path)
    entries = config.get("recipes")
    items = [entries] if isinstance(entries, str) else entries if isinstance(entries, list) else []
    for index, item in enumerate(items):
        entry = {"recipe": item} if isinstance(item, str) else item
        recipe = entry.get("recipe") if isinstance(entry, dict) else None
        if isinstance(recipe, str) and recipe.endswith((".yaml", ".yml")) and (path.parent / recipe).is_file():
            items[index] = entry | {"recipe": str((path.parent / recipe).resolve())}
    if isinstance(entries, list):
        config["recipes"] = items
    return config
