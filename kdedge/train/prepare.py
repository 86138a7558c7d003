"""Before a stage trains: the recipe's data (limits, validation split, transfer set), the checks that run
before anything is written, the run's context (device, precision, DDP rank, where records go) and the files
a run writes about its data (recipe.yaml, bad_images.txt, split.json). kdedge.train.pipeline runs the stages.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError

from kdedge.data import DATASETS
from kdedge.data.load import load_data
from kdedge.data.types import DataBundle, Split, filter_classes, split_record, split_validation
from kdedge.errors import InputError
from kdedge.files.atomic import atomic_write_text
from kdedge.files.rundir import RunDir, data_info
from kdedge.models.builders import check_input_size
from kdedge.recipe import Recipe
from kdedge.report.tensorboard import TensorBoardLogger
from kdedge.train import biasfix
from kdedge.train.context import Context
from kdedge.train.devices import resolve_amp, resolve_device
from kdedge.train.distributed import current_world, process_device
from kdedge.ui.console import error_console


def prepare_data(recipe: Recipe, data_root: str | None, run_dir: Path | None = None) -> DataBundle:
    """The recipe's data set with its validation split and optional size limits applied."""
    cfg = recipe.data
    run_options = {"run_dir": str(run_dir)} if run_dir is not None else {}  # the cache's fallback folder
    bundle = load_data(cfg.name, data_root, cfg.image_size, cfg.loader_options() | run_options)
    bundle = split_validation(bundle, cfg.val_size, recipe.seed)

    def first(split: Split, limit: int | None) -> Split:
        if limit is None or limit >= len(split):
            return split
        order = torch.randperm(len(split), generator=torch.Generator().manual_seed(recipe.seed))
        return split.subset(order[:limit])

    return replace(bundle, train=first(bundle.train, cfg.train_limit), test=first(bundle.test, cfg.test_limit))


def with_measured_norm(recipe: Recipe, bundle: DataBundle) -> Recipe:
    """The recipe as it ran: for a source that takes data.mean / data.std (folder, csv) and a recipe that left
    them to be measured on the training split, the measured values written in, so that the run's recipe.yaml
    says how its inputs were normalised and a rerun of it normalises alike."""
    data = recipe.data
    options = DATASETS.get(data.name).options
    if data.mean is not None or data.std is not None or options is None:
        return recipe
    try:  # APTOS uses the models' ImageNet mean/std and refuses the keys: nothing to record
        options.model_validate(data.loader_options() | {"mean": list(bundle.mean), "std": list(bundle.std)})
    except ValidationError:
        return recipe
    measured = data.model_copy(update={"mean": list(bundle.mean), "std": list(bundle.std)})
    return recipe.model_copy(update={"data": measured})


def student_train_split(recipe: Recipe, bundle: DataBundle) -> Split:
    """The student's transfer set: the training split minus omitted classes (the teacher saw all)."""
    cfg = recipe.data
    for cls in [*cfg.omit_classes, *(cfg.keep_classes or [])]:
        if not 0 <= cls < bundle.num_classes:
            raise InputError(f"data: class {cls} does not exist (classes are 0..{bundle.num_classes - 1})")
    split = filter_classes(bundle.train, cfg.omit_classes, cfg.keep_classes)
    if len(split) == 0:
        raise InputError("data.omit_classes / data.keep_classes leave no training images for the student")
    return split


def transfer_set(recipe: Recipe, bundle: DataBundle) -> tuple[Split, Split | None]:
    """(the student's transfer set, the images held out for distillation.bias_fix: auto or None). The
    holdout is taken before classes are dropped, so it still shows the classes the student never sees."""
    pool, holdout = biasfix.split_holdout(bundle.train, recipe)
    return student_train_split(recipe, replace(bundle, train=pool)), holdout


class RunMetrics:
    """Each epoch's record into RUN/metrics.jsonl, and into TensorBoard events when the recipe asks."""

    def __init__(self, run: RunDir, tensorboard: bool) -> None:
        self.run = run
        self.tensorboard = TensorBoardLogger(run.path) if tensorboard else None

    def log(self, record: dict) -> None:
        self.run.append_metrics(record)
        if self.tensorboard is not None:
            self.tensorboard(record)


def make_context(
    recipe: Recipe,
    bundle: DataBundle,
    progress=None,
    metrics: RunMetrics | None = None,
    teacher_logits_file: Path | None = None,
) -> Context:
    """The run's frozen training context; every epoch scores the test split (and val, when there is one)."""
    world = current_world()  # rank 0 of 1 unless started by torchrun (kdedge.train.distributed)
    device = process_device(resolve_device(recipe.device), world)
    amp, _ = resolve_amp(recipe.amp, device)  # 'auto' -> what this hardware computes natively
    evaluation = {"test": bundle.test} | ({"val": bundle.val} if bundle.val is not None else {})
    return Context(
        device=device,
        mean=bundle.mean,
        std=bundle.std,
        seed=recipe.seed,
        amp=amp,
        channels_last=recipe.channels_last,  # CPU too: oneDNN convolutions run faster in NHWC (docs/cifar10.md)
        rank=world.rank,
        world_size=world.world_size,
        num_classes=bundle.num_classes,
        evaluation=evaluation,
        metrics=metrics,
        progress=progress,
        teacher_logits_file=teacher_logits_file,
    )


def data_record(bundle: DataBundle) -> dict[str, Any]:
    """summary.json's "data" entry: what export / eval / bench need to rebuild a model and find its data."""
    sizes = {"train_images": len(bundle.train), "test_images": len(bundle.test)}
    return data_info(bundle) | sizes | {"root": bundle.root, "skipped_images": len(bundle.skipped)}


def write_run_files(recipe: Recipe, bundle: DataBundle, run: RunDir) -> None:
    """RUN/recipe.yaml (as it ran), RUN/bad_images.txt (--skip-bad-images: the count said, the list kept
    beside the results) and RUN/split.json (which files trained / tested, for audits), before training."""
    run.write_recipe(with_measured_norm(recipe, bundle))
    if bundle.skipped:
        listing = "".join(f"{reason}\n" for _, reason in bundle.skipped)
        atomic_write_text(run.path / "bad_images.txt", listing)
        error_console.print(
            f"warning: skipped {len(bundle.skipped)} unreadable images (e.g. "
            f"{bundle.skipped[0][1]}); list in {run.path / 'bad_images.txt'}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    if (split := split_record(bundle)) is not None:
        atomic_write_text(run.path / "split.json", json.dumps(split, indent=1))
        check_checkpoint_splits(recipe, split)


def check_stages_fit_data(recipe: Recipe, bundle: DataBundle) -> None:
    """Before anything is written: each stage's model takes the data's image size (a timm model's patches,
    windows or minimum size: kdedge.models.builders.check_input_size), keep: best_val has a validation
    split, and a stage loaded from a run directory was trained on this data set (check_checkpoint_data)."""
    for stage in ("teacher", "student"):
        if (cfg := getattr(recipe, stage)) is not None:
            check_input_size(cfg.model, bundle.image_size, cfg.model_kwargs, bundle.in_channels)
    check_keep(recipe, bundle)
    check_checkpoint_data(recipe, bundle)


def check_keep(recipe: Recipe, bundle: DataBundle) -> None:
    """keep: best_val picks an epoch by its validation score: the data must have a validation split."""
    for stage in ("teacher", "student"):
        cfg = getattr(recipe, stage)
        if cfg is not None and cfg.keep == "best_val" and not cfg.checkpoint and bundle.val is None:
            raise InputError(
                f"{stage}.keep: best_val keeps the epoch with the best validation accuracy, and "
                f"{bundle.name} has no validation split here; set data.val_size (e.g. "
                f"{max(1, len(bundle.train) // 10)}) or {stage}.keep: last"
            )


def check_checkpoint_data(recipe: Recipe, bundle: DataBundle) -> None:
    """A stage loaded from a run directory must have trained on this data set, at this image size: a
    teacher of another data set with the same class count would load and distil nonsense. The other run's
    data entry is its summary.json's, or (a run stopped before it finished) its weights file's."""
    ours = data_info(bundle)
    for stage in ("teacher", "student"):
        cfg = getattr(recipe, stage)
        if cfg is None or not cfg.checkpoint or not (folder := Path(cfg.checkpoint)).is_dir():
            continue
        theirs = RunDir(folder).data_entry(stage)
        if not theirs:
            continue
        if any(theirs.get(key) != ours[key] for key in ("dataset", "num_classes", "image_size")):
            trained = f"{theirs.get('dataset')} ({theirs.get('num_classes')} classes, {theirs.get('image_size')} px)"
            raise InputError(
                f"{stage}.checkpoint {folder} was trained on {trained}; this recipe uses "
                f"{ours['dataset']} ({ours['num_classes']} classes, {ours['image_size']} px)"
            )


def check_checkpoint_splits(recipe: Recipe, split: dict) -> None:
    """A stage loaded from a run directory must not have trained on this run's test images (a teacher of
    another data.split seed would leak them into the student's score)."""
    for stage in ("teacher", "student"):
        cfg = getattr(recipe, stage)
        if cfg is None or not cfg.checkpoint or not (other := Path(cfg.checkpoint) / "split.json").is_file():
            continue
        leaked = set(json.loads(other.read_text())["train"]) & set(split["test"])
        if leaked:
            raise InputError(
                f"{stage}.checkpoint {other.parent} trained on {len(leaked)} of this run's "
                f"{len(split['test'])} test images (e.g. '{min(leaked)}'); use that run's "
                "data.split and data set"
            )
