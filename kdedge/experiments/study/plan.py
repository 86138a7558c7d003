"""A study's runs, decided before anything trains: every recipe x row x seed as a resolved Recipe and its
folder, the no-KD baselines, and the teachers (one per seed and teacher setting, shared by every row and
every recipe whose teacher is the same).

STUDY/teachers/<recipe>-<key>/seed<N>/   a teacher-only run (`kdedge train`), loaded by the students of
                                          that seed through teacher.checkpoint
STUDY/runs/<recipe>/<row>/seed<N>/        one ordinary run directory per recipe, row and seed

A no-KD baseline whose student is its teacher (self-KD: the same model, schedule and data, trained alone at
the same seed) is the teacher run itself: same initialisation, batch order and augmentation, so it is read
from there, never trained twice; so is a baseline that another recipe of the study trains as its teacher at
that seed (reverse KD's ResNet50 trained alone is the ResNet50 self-KD row's teacher).

A folder that already holds a run of another recipe (the study changed) is refused, never mixed in.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from kdedge.errors import InputError
from kdedge.experiments.study.spec import StudySpec
from kdedge.files.rundir import RunDir
from kdedge.recipe import Recipe, load_recipe, parse_set, validate_recipe
from kdedge.recipe.grid import grid_points, point_name

BASELINE = "no-kd"  # the row name of a recipe's student trained alone
SEEDED_PATHS = ("teacher.checkpoint", "student.checkpoint")  # where `{seed}` names the seed's own run
# recipe keys a teacher does not depend on: two recipes that differ only here share one teacher per seed
NOT_TEACHER = ("name", "description", "student", "distillation", "sweep", "export", "tensorboard", "seed")


@dataclass(frozen=True)
class Cell:
    """One run of the study: `row` of `entry` at `seed`; `baseline` names its no-KD row (None for a row
    without one, or for the baseline itself). `stage`: the summary entry that holds its numbers ("teacher"
    for a baseline that is its teacher's run)."""

    entry: str
    row: str
    seed: int
    recipe: Recipe
    path: Path
    baseline: str | None = None
    stage: str = "student"

    @property
    def is_baseline(self) -> bool:
        return self.row == BASELINE or self.row.startswith(BASELINE + ",")


@dataclass(frozen=True)
class TeacherRun:
    """A teacher-only run shared by the cells of one seed whose teacher settings hash to `key`."""

    entry: str
    key: str
    seed: int
    recipe: Recipe
    path: Path


@dataclass(frozen=True)
class Plan:
    spec: StudySpec
    out: Path
    teachers: tuple[TeacherRun, ...]
    cells: tuple[Cell, ...]

    def teacher_checkpoints(self) -> set[str]:
        """The teacher.checkpoint values that name the study's own teacher runs (resolved paths)."""
        return {str(teacher.path.resolve()) for teacher in self.teachers}

    def trained_cells(self) -> list[Cell]:
        """The cells with a run of their own (not a baseline read from its teacher's run)."""
        return [cell for cell in self.cells if cell.stage == "student"]


def row_overrides(spec: StudySpec, recipe: Recipe) -> list[tuple[str, dict[str, Any]]]:
    """(row name, its overrides) of every row: the variants crossed with the grid's points; without either,
    one row: the recipe as it is ('kd' when it distills)."""
    variants = {name: parse_set(list(sets)) for name, sets in spec.variants.items()}
    points = grid_points(spec.grid_values()) if spec.grid else [{}]
    if not variants:
        variants = {"kd" if _distills(recipe) else recipe.distillation.loss: {}}
    rows = []
    for name, values in variants.items():
        for point in points:
            label = ",".join(part for part in (name if spec.variants or not point else "", point_name(point)) if part)
            rows.append((label, values | point))
    return rows


def for_seed(overrides: dict[str, Any], seed: int) -> dict[str, Any]:
    """The overrides of one run at `seed`: the seed set, and `{seed}` in a checkpoint path replaced by it, so
    that each seed loads its own teacher trained beforehand (teacher.checkpoint=runs/teacher-s{seed})."""
    seeded = {
        key: value.replace("{seed}", str(seed)) if key in SEEDED_PATHS and isinstance(value, str) else value
        for key, value in overrides.items()
    }
    return seeded | {"seed": seed}


def _distills(recipe: Recipe) -> bool:
    return recipe.teacher is not None and recipe.student is not None and recipe.distillation.loss != "none"


def baseline_overrides(overrides: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The no-KD row that a row is compared with: its values outside distillation, and loss none."""
    rest = {key: value for key, value in overrides.items() if not key.startswith("distillation.")}
    name = BASELINE + ("," + point_name(rest) if rest else "")
    return name, rest | {"distillation.loss": "none"}


def teacher_key(recipe: Recipe) -> str:
    """sha256 (8 hex digits) of what the teacher's training depends on (the recipe without NOT_TEACHER)."""
    config = {key: value for key, value in recipe.to_dict().items() if key not in NOT_TEACHER}
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:8]


def teacher_recipe(recipe: Recipe) -> Recipe:
    """The recipe's teacher alone (what `kdedge train` runs)."""
    config = recipe.to_dict() | {"student": None, "sweep": None}
    return validate_recipe(config, source=f"{recipe.name} (teacher)")


def make_plan(spec: StudySpec, out: Path) -> Plan:
    """Every run of the study (see the module docstring), checked against what `out` already holds."""
    names = spec.entry_names()
    teachers: dict[tuple[str, int], TeacherRun] = {}
    cells: list[Cell] = []
    for entry, name in zip(spec.recipes, names, strict=True):
        common = parse_set([*spec.set, *entry.set])
        for seed in spec.seeds:
            first = _load(entry.recipe, for_seed(common, seed), spec)
            for row, values in row_overrides(spec, first):
                cells += _row_cells(spec, entry.recipe, name, row, (common, values), seed, out, teachers)
    unique = _without_duplicates([_read_from_a_teacher(cell, teachers) for cell in cells])
    plan = Plan(spec, out, tuple(teachers.values()), tuple(unique))
    for run in [*plan.teachers, *plan.trained_cells()]:
        check_folder(run.path, run.recipe)
    return plan


def _row_cells(
    spec: StudySpec,
    recipe_name: str,
    entry: str,
    row: str,
    overrides: tuple[dict[str, Any], dict[str, Any]],
    seed: int,
    out: Path,
    teachers: dict[tuple[str, int], TeacherRun],
) -> list[Cell]:
    """The row's cell at `seed`, and its baseline's when the study wants one. overrides: (the --set values
    of every row of the entry, the row's own)."""
    common, own = overrides
    recipe = _load(recipe_name, for_seed(common | own, seed), spec)
    wanted = [(row, own, None)]
    if spec.baseline and _distills(recipe):
        base_name, base_values = baseline_overrides(own)
        wanted = [(row, own, base_name), (base_name, base_values, None)]
    cells = []
    for name, values, baseline in wanted:
        values = for_seed(common | values, seed)
        teacher = _teacher_for(_load(recipe_name, values, spec), entry, seed, out, teachers)
        extra = {"teacher.checkpoint": str(teacher.path.resolve())} if teacher else {}
        resolved = _load(recipe_name, values | extra, spec)
        if teacher is not None and baseline is None and name != row and is_its_teacher(resolved):
            cells.append(Cell(entry, name, seed, resolved, teacher.path, stage="teacher"))
            continue
        cells.append(Cell(entry, name, seed, resolved, out / "runs" / entry / name / f"seed{seed}", baseline))
    return cells


def is_its_teacher(recipe: Recipe) -> bool:
    """Is training this recipe's student alone the same run as training its teacher? The same stage settings
    (apart from where the teacher's weights come from) on the whole training split, nothing done after."""
    if recipe.teacher is None or recipe.student is None or recipe.student.checkpoint:
        return False
    teacher = recipe.teacher.model_dump(mode="json") | {"checkpoint": None}
    data = recipe.data
    whole = not data.omit_classes and data.keep_classes is None and recipe.distillation.bias_fix is None
    return whole and recipe.student.model_dump(mode="json") == teacher


def _read_from_a_teacher(cell: Cell, teachers: dict[tuple[str, int], TeacherRun]) -> Cell:
    """A no-KD baseline that is the very run some entry's teacher makes at the same seed (same model, stage
    settings and data: a ResNet50 trained alone is the reverse-KD row's baseline and the ResNet50 self-KD
    row's teacher) is read from that teacher's run rather than trained a second time."""
    if not cell.is_baseline or cell.stage != "student" or cell.recipe.student is None:
        return cell
    data = cell.recipe.data
    if data.omit_classes or data.keep_classes is not None or cell.recipe.distillation.bias_fix is not None:
        return cell
    config = cell.recipe.to_dict()
    alone = config | {"teacher": config["student"] | {"checkpoint": None}, "student": None, "sweep": None}
    key = teacher_key(validate_recipe(alone, source=f"{cell.recipe.name} (no-KD student as a teacher)"))
    run = teachers.get((key, cell.seed))
    return cell if run is None else replace(cell, path=run.path, stage="teacher")


def _teacher_for(
    recipe: Recipe, entry: str, seed: int, out: Path, teachers: dict[tuple[str, int], TeacherRun]
) -> TeacherRun | None:
    """The teacher run this recipe's students load at `seed` (made once per teacher key); None when the recipe
    names its own teacher.checkpoint or has no teacher."""
    if recipe.teacher is None or recipe.teacher.checkpoint:
        return None
    key = teacher_key(recipe)
    if (key, seed) not in teachers:
        path = out / "teachers" / f"{entry}-{key}" / f"seed{seed}"
        teachers[(key, seed)] = TeacherRun(entry, key, seed, teacher_recipe(recipe), path)
    return teachers[(key, seed)]


def _load(recipe: str, overrides: dict[str, Any], spec: StudySpec) -> Recipe:
    loaded = load_recipe(recipe, overrides)
    if loaded.sweep is not None:
        raise InputError(
            f"study: recipe {recipe} has a sweep section; a study runs one run per row: give its grid as "
            "--grid (or the study's grid:), or drop it with --set sweep=null"
        )
    return loaded


def _without_duplicates(cells: list[Cell]) -> list[Cell]:
    """One cell per (entry, row, seed): the baseline shared by several rows is planned once, and a baseline
    that is the same run as a row of the study (a variant with distillation.loss: none) is that row."""

    def same_run(cell: Cell) -> tuple[str, int, str]:
        return cell.entry, cell.seed, json.dumps(comparable(cell.recipe), sort_keys=True)

    rows = {same_run(cell): cell.row for cell in cells if not cell.is_baseline}
    alias = {(c.entry, c.seed, c.row): rows[same_run(c)] for c in cells if c.is_baseline and same_run(c) in rows}
    kept: dict[tuple[str, str, int], Cell] = {}
    for cell in cells:
        if (cell.entry, cell.seed, cell.row) not in alias:
            baseline = alias.get((cell.entry, cell.seed, cell.baseline), cell.baseline)
            kept.setdefault((cell.entry, cell.row, cell.seed), replace(cell, baseline=baseline))
    return list(kept.values())


def comparable(recipe: Recipe) -> dict[str, Any]:
    """A recipe as two runs of the same study compare it: its teacher's path left out (the study folder
    may have moved), its description (words about the run, not part of it), and a stage's step-decay keys
    when its schedule is not `step` (they change nothing then)."""
    config = recipe.to_dict()
    config.pop("description", None)
    if config.get("teacher"):
        config["teacher"] = {k: v for k, v in config["teacher"].items() if k != "checkpoint"}
    for stage in ("teacher", "student"):
        if config.get(stage) and config[stage].get("schedule") != "step":
            config[stage] = {k: v for k, v in config[stage].items() if k not in ("step_epochs", "step_gamma")}
    return config


def check_folder(path: Path, recipe: Recipe) -> None:
    """A folder with a run of another recipe (finished or stopped) is refused, naming the keys that differ."""
    if not (path / "recipe.yaml").is_file():
        return
    old, new = comparable(RunDir(path).read_recipe()), comparable(recipe)
    if old == new:
        return
    changed = sorted(_differences(old, new))
    raise InputError(
        f"study: {path} holds a run of another recipe ({', '.join(changed[:4])} differ); "
        "use another --out, or delete that folder to train it again"
    )


def _differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two recipe dicts."""
    if isinstance(old, dict) and isinstance(new, dict):
        keys = dict.fromkeys([*old, *new])
        return [d for k in keys for d in _differences(old.get(k), new.get(k), f"{prefix}{k}.")]
    return [] if old == new else [prefix.rstrip(".")]
