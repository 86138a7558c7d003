"""What each `kdedge` command is asked to do, as one frozen object: the CLI builds it from the command line
(kdedge.cli), the Python API from keyword arguments (kdedge.api), and the command runs it
(kdedge.commands.<name>). The defaults live here and nowhere else.

Light on purpose (no torch, no kdedge module but errors): building an options object costs nothing, so
`kdedge --help` and `import kdedge` stay fast.
"""

from __future__ import annotations

import json
import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PathLike = str | os.PathLike
Overrides = dict[str, Any] | list[str] | tuple[str, ...] | None
BOTH_STAGES = ("teacher", "student")

# Flags that are recipe keys under another name: the flag appends `--set KEY=true`, so a recipe file and the
# flag mean the same and the run's recipe.yaml records it
RECIPE_FLAGS = {"skip_bad_images": "data.skip_bad_images", "tensorboard": "tensorboard"}


def set_strings(overrides: Overrides) -> tuple[str, ...]:
    """{'student.epochs': 5} or ['student.epochs=5'] -> ('student.epochs=5',) (values as YAML, typed later)."""
    if overrides is None:
        return ()
    if isinstance(overrides, dict):
        return tuple(
            f"{key}={value if isinstance(value, str) else json.dumps(value)}" for key, value in overrides.items()
        )
    return tuple(str(item) for item in overrides)


def _path(value: PathLike | None) -> Path | None:
    return None if value is None else Path(os.fspath(value))


def _normalise(options: object, paths: tuple[str, ...] = (), path_lists: tuple[str, ...] = ()) -> None:
    """Frozen dataclasses take what a caller has (str or Path, a list or a tuple) and keep one type."""
    for name in paths:
        object.__setattr__(options, name, _path(getattr(options, name)))
    for name in path_lists:
        value = getattr(options, name)
        items = [value] if isinstance(value, (str, os.PathLike)) else value
        object.__setattr__(options, name, tuple(Path(os.fspath(item)) for item in items))


@dataclass(frozen=True)
class DistillOptions:
    """`kdedge distill` (stages teacher, student) and `kdedge train` (the same, stopped after the teacher)."""

    recipe: str  # a YAML path or a packaged recipe name
    overrides: tuple[str, ...] = ()  # --set KEY=VALUE, in order (a later one wins)
    out: Path | None = None  # default runs/<recipe name>
    data_root: str | None = None
    force: bool = False
    quiet: bool = False
    resume: Path | None = None
    checkpoint_minutes: float = 30.0
    tensorboard: bool = False  # = --set tensorboard=true
    skip_bad_images: bool = False  # = --set data.skip_bad_images=true
    threads: int | None = None  # CPU threads of this run (kdedge.runtime.threads.limit); None: one per core
    stages: tuple[str, ...] = BOTH_STAGES

    def __post_init__(self) -> None:
        object.__setattr__(self, "recipe", os.fspath(self.recipe))
        object.__setattr__(self, "overrides", set_strings(self.overrides))
        object.__setattr__(self, "stages", tuple(self.stages))
        _normalise(self, paths=("out", "resume"))

    def set_values(self) -> list[str]:
        """The --set values, then those of the flags that are recipe keys (RECIPE_FLAGS)."""
        flags = [f"{key}=true" for name, key in RECIPE_FLAGS.items() if getattr(self, name)]
        return [*self.overrides, *flags]


@dataclass(frozen=True)
class SweepOptions:
    """`kdedge sweep`: one teacher, one student per grid point, here (--jobs) or on Ray."""

    recipe: str
    grid: tuple[str, ...] = ()  # --grid KEY=V1,V2,... axes
    overrides: tuple[str, ...] = ()
    out: Path | None = None  # default runs/<recipe>_sweep
    data_root: str | None = None
    quiet: bool = False
    jobs: int = 1
    metric: str | None = None
    backend: str = "local"  # local | ray; the fields below apply to ray only
    address: str | None = None
    cpus: int | None = None
    cpus_per_point: float = 1.0
    gpus_per_point: float = 0.0
    retries: int = 2

    def __post_init__(self) -> None:
        object.__setattr__(self, "recipe", os.fspath(self.recipe))
        object.__setattr__(self, "grid", tuple(self.grid))
        object.__setattr__(self, "overrides", set_strings(self.overrides))
        _normalise(self, paths=("out",))


@dataclass(frozen=True)
class StudyOptions:
    """`kdedge study`: recipes x seeds x rows, each KD row beside its no-KD baseline (kdedge.experiments.study).
    `targets`: one study file, or recipes (names or files). Given with a study file, the other options change
    it: seeds / metric / title / baseline replace its values, sets, variants and grid axes are added."""

    targets: tuple[str, ...]
    seeds: tuple[int, ...] | None = None  # default: the file's, else (0,)
    overrides: tuple[str, ...] = ()  # --set KEY=VALUE for every run
    variants: tuple[str, ...] = ()  # --variant 'NAME: KEY=VALUE ...', one table row each
    grid: tuple[str, ...] = ()  # --grid KEY=V1,V2: rows from a grid (crossed with the variants)
    baseline: bool | None = None  # default: the file's, else True
    metric: str | None = None  # default: the file's, else test_accuracy
    title: str | None = None
    out: Path | None = None  # default runs/<study file stem>, or runs/<first recipe>_study
    json: Path | None = None  # also write the table file here (bench/results/NAME.json)
    data_root: str | None = None
    table_only: bool = False  # train nothing: tabulate the runs that finished
    quiet: bool = False
    wide: bool = False

    def __post_init__(self) -> None:
        targets = [self.targets] if isinstance(self.targets, (str, os.PathLike)) else self.targets
        object.__setattr__(self, "targets", tuple(os.fspath(t) for t in targets))
        object.__setattr__(self, "seeds", None if self.seeds is None else tuple(int(s) for s in self.seeds))
        object.__setattr__(self, "overrides", set_strings(self.overrides))
        variants = self.variants  # the API may give {name: [KEY=VALUE, ...]}
        if isinstance(variants, dict):
            variants = [f"{name}: {shlex.join(set_strings(sets))}" for name, sets in variants.items()]
        object.__setattr__(self, "variants", tuple(variants))
        object.__setattr__(self, "grid", tuple(self.grid))
        _normalise(self, paths=("out", "json"))


@dataclass(frozen=True)
class ExportOptions:
    """`kdedge export RUN`: files per stage, precision and format, each checked; or, with target, the
    deployable file `kdedge bench` chose. None: the recipe's export section (or the built-in default)."""

    run_dir: Path
    models: str = "both"  # student | teacher | both
    precisions: str = "fp32,fp16,int8"
    opset: int | None = None
    calibration_images: int | None = None
    int8_scheme: str | None = None
    int8_method: str | None = None
    min_top1_agreement: float | None = None
    fp32_rtol: float | None = None
    limit: int | None = None
    target: str | None = None
    accuracy_bound: float = 0.5
    force: bool = False
    formats: str = "onnx"
    batches: str = "1"
    data_root: str | None = None
    quiet: bool = False
    wide: bool = False

    def __post_init__(self) -> None:
        _normalise(self, paths=("run_dir",))

    def settings(self) -> dict[str, Any]:
        """The values that override the recipe's export section (kdedge.export.options.check_request)."""
        keys = ("opset", "calibration_images", "int8_scheme", "int8_method", "min_top1_agreement", "fp32_rtol", "limit")
        return {key: getattr(self, key) for key in keys}


@dataclass(frozen=True)
class BenchCommandOptions:
    """`kdedge bench PATHS`, as given (strings such as batch "1,32" are checked by the command); named apart
    from kdedge.bench.run.BenchOptions, the checked measurement settings it becomes."""

    paths: tuple[Path, ...]
    device: str = "cpu"
    batch: str = "1,32"
    seconds: float = 2.0
    threads: int | None = None  # None: every core this process may use
    runtimes: str = "all"
    compile: bool = False
    limit: int | None = None
    peak: bool = False
    accuracy_bound: float = 0.5
    timeout: float = 600.0
    data_root: str | None = None
    quiet: bool = False
    wide: bool = False
    outputs: dict[str, Path | None] = field(default_factory=dict)  # {'json' | 'csv' | 'md' | 'plot': file}

    def __post_init__(self) -> None:
        _normalise(self, path_lists=("paths",))
        object.__setattr__(self, "outputs", {kind: _path(file) for kind, file in self.outputs.items()})


@dataclass(frozen=True)
class InitOptions:
    """`kdedge init PATH`: look at the images, write a recipe that runs."""

    path: Path
    teacher: str = "resnet18"
    student: str = "mobilenetv2_100"  # ReLU6, no squeeze-excite: its int8 file agrees with fp32 (docs/own-images.md)
    image_size: int | None = None
    out: Path | None = None  # default ./<name>.yaml
    force: bool = False

    def __post_init__(self) -> None:
        _normalise(self, paths=("path", "out"))


@dataclass(frozen=True)
class PredictOptions:
    """`kdedge predict MODEL IMAGES...`: top-k classes per image from an exported file or a run folder."""

    model: Path
    images: tuple[Path, ...]
    top_k: int = 1
    as_json: bool = False
    skip_bad_images: bool = False  # unreadable images left out and listed (result.skipped), not an error

    def __post_init__(self) -> None:
        _normalise(self, paths=("model",), path_lists=("images",))


@dataclass(frozen=True)
class CheckOptions:
    """`kdedge check FILE.onnx`: which ONNX-consuming runtimes load the file and agree with onnxruntime, on
    `images` (files / folders) or else the first `limit` test images of the run the file was exported from."""

    model: Path
    images: tuple[Path, ...] = ()
    limit: int = 256
    data_root: str | None = None
    as_json: bool = False

    def __post_init__(self) -> None:
        _normalise(self, paths=("model",), path_lists=("images",))


@dataclass(frozen=True)
class EvalOptions:
    """`kdedge eval RUN`: re-score a run's saved models on its recipe's test set."""

    run_dir: Path
    data_root: str | None = None
    as_json: bool = False

    def __post_init__(self) -> None:
        _normalise(self, paths=("run_dir",))


@dataclass(frozen=True)
class SearchOptions:
    """`kdedge search RECIPE --target T --latency-ms X`: the most accurate student whose target file meets the
    budget on this machine (kdedge.experiments.search). target and latency_ms are required (None here so that
    `--show-space` needs neither: the command says what is missing)."""

    recipe: str
    target: str | None = None  # FORMAT-PRECISION: litert-int8, onnx-int8, ...
    latency_ms: float | None = None
    size_mb: float | None = None
    peak_mb: float | None = None
    percentile: str = "p50"  # the latency the budget bounds: p50 | p90
    threads: int = 1
    batch: int = 1
    overrides: tuple[str, ...] = ()
    out: Path | None = None  # default runs/<recipe>_search
    space: Path | None = None  # default: the packaged space
    data_root: str | None = None
    backend: str = "local"  # local | ray; the fields below apply to ray only
    address: str | None = None
    cpus: int | None = None
    cpus_per_point: float = 1.0
    gpus_per_point: float = 0.0
    retries: int = 2
    hours: float | None = None
    cost_cache: Path | None = None  # default $KDEDGE_CACHE/search_costs.json, else ~/.cache/kdedge/...
    no_cost_cache: bool = False
    seconds: float = 2.0  # timed seconds per cost measurement, after warm-up
    seeds: int = 1  # > 1: the pick and the recipe's own student trained and measured at this many seeds
    quiet: bool = False
    wide: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "recipe", os.fspath(self.recipe))
        object.__setattr__(self, "overrides", set_strings(self.overrides))
        _normalise(self, paths=("out", "space", "cost_cache"))
