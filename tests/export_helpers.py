"""Run directories for the export / predict tests, built in-process in seconds: a recipe on real data
(MNIST or the CIFAR-10 subset from $KDEDGE_DATA), the data info, and student weights that are either
random or briefly trained (a few hundred Adam steps, so that classes are clear-cut)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from kdedge.data.types import normalize
from kdedge.files.rundir import RunDir, data_info
from kdedge.models.weights import build_stage_model
from kdedge.recipe import validate_recipe
from kdedge.train.pipeline import prepare_data


def make_run(
    path: Path,
    data_root: Path,
    model: str,
    dataset: str = "mnist",
    image_size: int | None = None,
    model_kwargs: dict | None = None,
    train_steps: int = 0,
    export: dict | None = None,
    test_limit: int = 200,
) -> Path:
    """A finished-looking run directory with a student only (distillation.loss none)."""
    config: dict[str, Any] = {
        "name": f"export-{model}",
        "seed": 0,
        "device": "cpu",
        "data": {"name": dataset, "image_size": image_size, "train_limit": 2000, "test_limit": test_limit},
        "student": {"model": model, "model_kwargs": model_kwargs or {}},
        "distillation": {"loss": "none"},
    }
    if export:
        config["export"] = export
    recipe = validate_recipe(config)
    bundle = prepare_data(recipe, str(data_root))
    torch.manual_seed(0)
    student = build_stage_model(recipe.student, data_info(bundle))
    if train_steps:
        _train(student, bundle, train_steps)
    run = RunDir(path)
    path.mkdir(parents=True, exist_ok=True)
    run.write_recipe(recipe)
    run.update_summary("data", data_info(bundle))
    run.save_weights("student", student.eval(), recipe)
    run.update_summary("finished", True)
    return path


def _train(model: nn.Module, bundle, steps: int, batch_size: int = 64) -> None:
    """A few Adam steps on the real training images (enough for MNIST MLPs to reach ~90%)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny batches: a second thread only spin-waits (15x the CPU time on a busy box)
    generator = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(steps):
        index = torch.randint(0, len(bundle.train), (batch_size,), generator=generator)
        inputs = normalize(bundle.train.images[index], bundle.mean, bundle.std)
        loss = nn.functional.cross_entropy(model(inputs), bundle.train.labels[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    torch.set_num_threads(threads)
    model.eval()


def make_exported_run(
    path: Path,
    data_root: Path,
    model: str,
    precisions: str,
    *,
    models: str = "student",
    export_options: dict | None = None,
    **run_options: Any,
) -> tuple[Path, list]:
    """make_run(path, data_root, model, **run_options), then a quiet `export_run` of it with
    `export_options` (calibration_images, int8_scheme, ...): (run directory, export rows)."""
    run = make_run(path, data_root, model, **run_options)
    return run, export_checked(run, models, precisions, data_root=str(data_root), quiet=True, **(export_options or {}))


def export_checked(
    run: Path,
    models: str,
    precisions: str,
    *,
    formats: str = "onnx",
    batches: str = "1",
    data_root: str | None = None,
    quiet: bool = True,
    force: bool = False,
    **overrides: Any,
) -> list:
    """check_request(run, models, precisions, formats, batches, overrides), then export_run of that request
    (overrides: the recipe's export section, e.g. limit=50, int8_method="nncf"): the export rows."""
    from kdedge.export.options import check_request
    from kdedge.export.runner import export_run

    request = check_request(run, models, precisions, formats, batches, overrides)
    return export_run(request, data_root=data_root, quiet=quiet, force=force)


def require_extras(modules: tuple[str, ...] | list[str], installed_by: str, install: str) -> None:
    """Skip without `modules` (the message: `install` with {missing} filled in), except in CI, where
    `installed_by` installs them: a skip there would hide a missing install step."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing and os.environ.get("CI"):
        pytest.fail(f"CI must install the edge extras ({installed_by}): missing {missing}")
    if missing:
        pytest.skip(install.format(missing=missing))
