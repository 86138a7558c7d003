"""The Python API: what the `kdedge` commands do, for notebooks and scripts (the CLI calls these).

    import kdedge

    run = kdedge.distill("hinton_mnist", overrides={"student.epochs": 5}, out="runs/try1")
    print(run.summary["student"]["test_accuracy"])
    kdedge.export(run, precisions="fp32,int8")
    rows = kdedge.bench(run, batch="1", runtimes="onnxruntime")

Every function takes the same inputs as its command (a recipe name or YAML path, `--set` values as a dict
or as "KEY=VALUE" strings, a run folder as a path or a `Run`) and raises kdedge.errors.InputError (bad
input) or RuntimeFailure (the work failed) with the one-line message the CLI would print. Heavy modules
(torch, onnxruntime) are imported inside the functions: `import kdedge` stays light.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kdedge.export.table import ExportRow
    from kdedge.recipe import Recipe

Overrides = dict[str, Any] | list[str] | tuple[str, ...] | None
STAGES = ("teacher", "student")


@dataclass(frozen=True)
class Run:
    """A run directory (or a sweep's folder): where its files are and what its summary says. Accepted
    wherever a path is (os.fspath(run))."""

    path: Path

    def __fspath__(self) -> str:
        return str(self.path)

    @property
    def summary(self) -> dict[str, Any]:
        """summary.json: {'data': ..., 'teacher': {'test_accuracy', 'test_errors', 'params', ...}, ...}."""
        file = self.path / "summary.json"
        return json.loads(file.read_text()) if file.is_file() else {}

    @property
    def recipe(self) -> Recipe:
        """The resolved recipe the run was trained with (RUN/recipe.yaml)."""
        from kdedge.files.rundir import RunDir

        return RunDir(self.path).read_recipe()

    def weights(self, stage: str = "student") -> Path:
        """RUN/<stage>.safetensors."""
        return self.path / f"{stage}.safetensors"

    def onnx(self, stage: str = "student", precision: str = "fp32") -> Path:
        """RUN/export/<stage>.<precision>.onnx (after `export`)."""
        return self.path / "export" / f"{stage}.{precision}.onnx"


def _set_strings(overrides: Overrides) -> list[str]:
    """{'student.epochs': 5} or ['student.epochs=5'] -> ['student.epochs=5'] (values as YAML, typed later)."""
    if overrides is None:
        return []
    if isinstance(overrides, dict):
        return [
            f"{key}={json.dumps(value) if not isinstance(value, str) else value}" for key, value in overrides.items()
        ]
    return list(overrides)


def distill(
    recipe: str | os.PathLike,
    overrides: Overrides = None,
    out: str | os.PathLike | None = None,
    *,
    data_root: str | None = None,
    force: bool = False,
    quiet: bool = False,
    resume: str | os.PathLike | None = None,
    checkpoint_minutes: float = 30.0,
    tensorboard: bool = False,
    stages: tuple[str, ...] = STAGES,
) -> Run:
    """Train the teacher (unless the recipe gives a checkpoint), then distill the student: `kdedge
    distill`. A recipe with a sweep section runs its sweep; the Run is then the sweep's folder."""
    from kdedge.commands.distill import distill_command

    out_path = None if out is None else Path(out)
    resume_path = None if resume is None else Path(resume)
    path = distill_command(
        str(recipe),
        _set_strings(overrides),
        out_path,
        data_root,
        force,
        quiet,
        tuple(stages),
        resume_path,
        checkpoint_minutes,
        tensorboard,
    )
    return Run(Path(path))


def train(
    recipe: str | os.PathLike, overrides: Overrides = None, out: str | os.PathLike | None = None, **options: Any
) -> Run:
    """The recipe's teacher only (`kdedge train`); options as for distill."""
    return distill(recipe, overrides, out, stages=("teacher",), **options)


def export(
    run: Run | str | os.PathLike, models: str = "both", precisions: str = "fp32,fp16,int8", **options: Any
) -> list[ExportRow]:
    """RUN/export/<stage>.<precision>.onnx, each checked and self-describing (`kdedge export`); options:
    opset, data_root, calibration_images, int8_scheme, int8_method, min_top1_agreement, limit, quiet,
    force, wide. Returns one row per file (accuracy, agreement with fp32, size, path)."""
    from kdedge.export.runner import export_run

    return export_run(os.fspath(run), models, precisions, options.pop("opset", None), **options)


def bench(
    paths: Run | str | os.PathLike | list,
    *,
    device: str = "cpu",
    batch: str = "1,32",
    seconds: float = 2.0,
    threads: int | None = None,
    runtimes: str = "all",
    compile: bool = False,
    limit: int | None = None,
    peak: bool = False,
    accuracy_bound: float = 0.5,
    timeout: float = 600,
    data_root: str | None = None,
    quiet: bool = False,
    wide: bool = False,
    outputs: dict[str, Path | None] | None = None,
) -> list[dict[str, Any]]:
    """Latency, throughput, memory, size and accuracy per runtime and precision (`kdedge bench`) of run
    directories and/or .onnx files; returns the rows (dicts, as in `--json`). outputs: {'json': path, 'csv':
    ..., 'md': ..., 'plot': ...}."""
    from kdedge.commands.bench import bench_command, make_options

    items = paths if isinstance(paths, (list, tuple)) else [paths]
    options = make_options(
        device, batch, seconds, threads, runtimes, compile, limit, peak, accuracy_bound, timeout, data_root
    )
    result = bench_command([Path(os.fspath(p)) for p in items], options, outputs or {}, quiet, wide)
    return result["rows"]
