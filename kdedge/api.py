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
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from kdedge.commands.options import (
    BenchCommandOptions,
    CheckOptions,
    DistillOptions,
    ExportOptions,
    InitOptions,
    Overrides,
    PathLike,
    PredictOptions,
    SearchOptions,
    StudyOptions,
    SweepOptions,
)

if TYPE_CHECKING:
    from kdedge.commands.export import ExportResult
    from kdedge.experiments.search.run import SearchResult
    from kdedge.recipe import Recipe
    from kdedge.runtime.predict import Predictions

T = TypeVar("T")


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


def _options(cls: type[T], first: Any, *args: Any, **kwargs: Any) -> T:
    """An options object: the one given (what the CLI passes), else built from the call's arguments."""
    if isinstance(first, cls):
        if args or any(value is not None for value in kwargs.values()):
            raise TypeError(f"give a {cls.__name__} or the arguments, not both")
        return first
    return cls(first, *args, **{key: value for key, value in kwargs.items() if value is not None})


def distill(
    recipe: PathLike | DistillOptions, overrides: Overrides = None, out: PathLike | None = None, **options: Any
) -> Run:
    """Train the teacher (unless the recipe gives a checkpoint), then distill the student: `kdedge
    distill`. A recipe with a sweep section runs its sweep; the Run is then the sweep's folder.

    options: data_root, force, quiet, resume, checkpoint_minutes, tensorboard, skip_bad_images, threads (the
    fields of kdedge.commands.options.DistillOptions, which may also be given instead of the recipe)."""
    from kdedge.commands.distill import distill_command

    return Run(distill_command(_options(DistillOptions, recipe, overrides=overrides, out=out, **options)))


def train(
    recipe: PathLike | DistillOptions, overrides: Overrides = None, out: PathLike | None = None, **options: Any
) -> Run:
    """The recipe's teacher only (`kdedge train`): distill stopped after the teacher; options as for
    distill."""
    chosen = _options(DistillOptions, recipe, overrides=overrides, out=out, **options)
    return distill(replace(chosen, stages=("teacher",)))


def sweep(recipe: PathLike | SweepOptions, **options: Any) -> list[dict[str, Any]]:
    """One teacher, one student per grid point (`kdedge sweep`); options: the fields of
    kdedge.commands.options.SweepOptions (grid, overrides, out, jobs, metric, backend, ...). Returns the
    rows, best first (as in SWEEP/sweep.csv)."""
    from kdedge.commands.sweep import sweep_command

    return sweep_command(_options(SweepOptions, recipe, **options))


def study(targets: PathLike | list | StudyOptions, **options: Any) -> dict[str, Any]:
    """Recipes x seeds x rows, each KD row beside its no-KD baseline (`kdedge study`): a study file, or
    recipes; options: the fields of kdedge.commands.options.StudyOptions (seeds, overrides, variants as
    {name: [KEY=VALUE, ...]}, grid, baseline, metric, title, out, json, table_only, ...). Each seed's teacher
    is trained once; finished runs are read, not retrained. Returns the table file (STUDY/study.json): its
    'rows' as shown, 'summary_rows' with the numbers (mean, spread, vs_baseline), 'runs' per run.

        table = kdedge.study("hinton_mnist", seeds=[0, 1], variants={"T8": ["distillation.temperature=8"]})
    """
    from kdedge.commands.study import study_command

    if not isinstance(targets, StudyOptions):
        targets = [targets] if isinstance(targets, (str, os.PathLike)) else list(targets)
    return study_command(_options(StudyOptions, targets, **options))


def search(recipe: PathLike | SearchOptions, **options: Any) -> SearchResult:
    """The most accurate student of the search space whose target file (e.g. target="litert-int8") meets the
    budget (latency_ms=..., size_mb=...) on this machine (`kdedge search`); options: the fields of
    kdedge.commands.options.SearchOptions. Returns the rows (best first), the pick and SEARCH/best (its
    file: result.best_file). InputError when no candidate meets the budget at all; RuntimeFailure, after the
    table, when no finalist's file does once measured again.

        result = kdedge.search("retina_mobile", target="litert-int8", latency_ms=2, size_mb=4, out="runs/s1")
    """
    from kdedge.commands.search import search_command

    return search_command(_options(SearchOptions, recipe, **options))


def init(path: PathLike | InitOptions, teacher: str | None = None, student: str | None = None, **options: Any) -> Path:
    """Look at a folder of class folders (or a CSV of image,label rows) and write a recipe that runs (`kdedge
    init`); returns the recipe file. options: image_size, out (default ./<name>.yaml), force."""
    from kdedge.commands.init import init_command

    return init_command(_options(InitOptions, path, teacher=teacher, student=student, **options))


def predict(
    model: Run | PathLike | PredictOptions, images: Any = None, top_k: int = 1, skip_bad_images: bool = False
) -> Predictions:
    """Top-k classes per image (`kdedge predict`) from an exported .onnx / .tflite / .pte file or a run folder
    (its deployable file, else its fp32 student); images: files, folders or glob patterns (one or a list).
    Returns [{'image': path, 'top': [{'class': name, 'index': i, 'probability': p}, ...]}, ...]; prints
    nothing. Neither .onnx nor .tflite imports torch.

    An unreadable image raises InputError, unless skip_bad_images: then the others are predicted,
    result.skipped lists the ones left out ([{'image': path, 'error': why}, ...]) and one RuntimeWarning
    says how many and which."""
    from kdedge.commands.predict import predict_results
    from kdedge.runtime.predict import skipped_line

    if not isinstance(model, PredictOptions):
        items = [images] if isinstance(images, (str, os.PathLike)) else list(images or [])
        model = PredictOptions(model, tuple(items), top_k, skip_bad_images=skip_bad_images)
    results = predict_results(model)
    if results.skipped:
        warnings.warn(skipped_line(results.skipped, len(results) + len(results.skipped)), RuntimeWarning, stacklevel=2)
    return results


def check(
    model: PathLike | CheckOptions, images: Any = None, limit: int = 256, data_root: str | None = None
) -> dict[str, Any]:
    """`kdedge check`: which ONNX-consuming runtimes (onnxruntime, OpenVINO, OpenCV DNN, tract) load the .onnx
    file and agree with onnxruntime on `images` (files / folders) or the run's own test images. Returns
    {'file', 'images', 'rows': [{'runtime', 'version', 'status', 'agreement', 'max_abs_diff', 'note'}, ...]}."""
    from kdedge.commands.check import check_results

    if isinstance(model, CheckOptions):
        return check_results(model)
    items = [images] if isinstance(images, (str, os.PathLike)) else list(images or [])
    return check_results(CheckOptions(model, tuple(items), limit, data_root))


def export(
    run: Run | PathLike | ExportOptions,
    models: str | None = None,
    precisions: str | None = None,
    **options: Any,
) -> ExportResult:
    """RUN/export/<stage>.<precision>.<suffix>, each checked and self-describing (`kdedge export`); options:
    the fields of kdedge.commands.options.ExportOptions (opset, data_root, calibration_images, int8_scheme,
    int8_method, min_top1_agreement, limit, quiet, force, wide, formats, batches).

    Returns the rows of the files written (accuracy, agreement with fp32, size, path). When some file
    failed its checks, the others are still returned; result.failed holds the failed rows, result.message
    the line that names them (also issued as a RuntimeWarning); with force=True nothing is replaced unless every
    file passes, so the result is then empty and the old RUN/export stays. Bad input raises InputError."""
    from kdedge.commands.export import export_command

    chosen = _options(ExportOptions, run, models=models, precisions=precisions, **options)
    result = export_command(chosen)
    if result.failed:
        warnings.warn(result.message, RuntimeWarning, stacklevel=2)
    return result


def bench(paths: Run | PathLike | list | BenchCommandOptions, **options: Any) -> list[dict[str, Any]]:
    """Latency, throughput, memory, size and accuracy per runtime and precision (`kdedge bench`) of run
    directories and/or .onnx files; returns the rows (dicts, as in `--json`). options: the fields of
    kdedge.commands.options.BenchCommandOptions (device, batch, seconds, threads, runtimes, compile, limit,
    peak, accuracy_bound, timeout, data_root, quiet, wide, outputs: {'json': path, 'csv': ..., 'md': ...,
    'plot': ...})."""
    from kdedge.commands.bench import bench_command

    if not isinstance(paths, BenchCommandOptions):
        paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    return bench_command(_options(BenchCommandOptions, paths, **options))["rows"]
