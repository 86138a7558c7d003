"""What `kdedge train` / `kdedge distill` do: data -> teacher (trained or loaded) -> student -> run dir."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import torch
from pydantic import ValidationError
from torch import nn

from kdedge.data import DATASETS
from kdedge.data.load import load_data
from kdedge.data.types import DataBundle, Split, filter_classes, split_record, split_validation
from kdedge.errors import Diverged, InputError, RuntimeFailure
from kdedge.files.atomic import atomic_write_text
from kdedge.files.rundir import RunDir, data_info
from kdedge.models.builders import check_input_size
from kdedge.models.weights import build_stage_model, load_weights_into, weights_path
from kdedge.recipe import Recipe, StageConfig
from kdedge.report.tensorboard import TensorBoardLogger
from kdedge.train import biasfix
from kdedge.train.checkpoint import Checkpoint
from kdedge.train.context import Context
from kdedge.train.devices import resolve_amp, resolve_device
from kdedge.train.distributed import current_world, process_device, training_module
from kdedge.train.evaluation import predict_logits, stage_summary
from kdedge.train.loop import fit
from kdedge.train.resume import Checkpointer
from kdedge.train.teacher_check import teacher_verdict, warning_line
from kdedge.ui.console import error_console, is_ordinal


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


def obtain_model(
    stage: str,
    recipe: Recipe,
    bundle: DataBundle,
    train: Split,
    ctx: Context,
    run: RunDir,
    teacher: nn.Module | None = None,
    checkpointer: Checkpointer | None = None,
) -> nn.Module:
    """Train one stage (or load it from `checkpoint`), save its weights and summary; return it in eval
    mode."""
    cfg: StageConfig = getattr(recipe, stage)
    torch.manual_seed(recipe.seed)  # the same init whether or not an earlier stage ran
    model = build_stage_model(cfg, data_info(bundle)).to(ctx.device)
    if ctx.channels_last:
        model = model.to(memory_format=torch.channels_last)
    # without one from the CLI (which cleared or checked RUN first), e.g. a sweep point: continue its
    # saved state
    checkpointer = checkpointer or Checkpointer(run, recipe, resume=True)
    if checkpointer.stage_finished(stage):  # --resume: a finished stage is loaded, never retrained
        load_weights_into(model, run.weights(stage), stage)
        return model.eval()
    started, cpu_started = time.perf_counter(), time.process_time()
    if cfg.checkpoint:
        load_weights_into(model, weights_path(cfg.checkpoint, stage), stage)
        extra = {"source": str(weights_path(cfg.checkpoint, stage))}
    else:
        trained = training_module(model, ctx.device, ctx.world_size, recipe.compile)  # DDP / compile wrappers
        checkpoint = checkpointer.open(stage, trained, cfg, ctx.seed, ctx.rank)  # restored when resuming
        records = _fit_saying_last_checkpoint(trained, train, cfg, ctx, teacher, recipe, checkpoint)
        extra = {"epochs": len(records), "train_accuracy": records[-1]["train_accuracy"]}
    extra["train_seconds"] = round(time.perf_counter() - started, 2)
    extra["train_cpu_seconds"] = round(time.process_time() - cpu_started, 2)  # all threads; less noisy
    run.save_weights(stage, model, recipe)
    run.update_summary(stage, stage_summary(model, bundle, ctx, cfg, extra))
    checkpointer.finish(stage)
    return model.eval()


def _fit_saying_last_checkpoint(
    model: nn.Module,
    train: Split,
    cfg: StageConfig,
    ctx: Context,
    teacher: nn.Module | None,
    recipe: Recipe,
    checkpoint: Checkpoint,
) -> list[dict]:
    """fit; a failure says where the last good checkpoint is (a NaN stop keeps its type: the CLI offers the
    retry with a lower lr, since --resume would refuse a changed lr)."""
    try:
        return fit(model, train, cfg, ctx, teacher, recipe.distillation, checkpoint)
    except Diverged as err:
        last_good = checkpoint.last_good
        raise Diverged(f"{err}; last good checkpoint: {last_good}", checkpoint.stage, cfg.lr) from None
    except RuntimeFailure as err:  # the same type (a full disk stays DiskFull), one more clause
        err.args = (f"{err}; last good checkpoint: {checkpoint.last_good}",)
        raise


def check_stages_fit_data(recipe: Recipe, bundle: DataBundle) -> None:
    """Before anything is written: each stage's model takes the data's image size (Swin's windows), and a
    stage loaded from a run directory was trained on this data set (check_checkpoint_data)."""
    for stage in ("teacher", "student"):
        if (cfg := getattr(recipe, stage)) is not None:
            check_input_size(cfg.model, bundle.image_size, cfg.model_kwargs)
    check_checkpoint_data(recipe, bundle)


def check_checkpoint_data(recipe: Recipe, bundle: DataBundle) -> None:
    """A stage loaded from a run directory must have trained on this data set, at this image size: a
    teacher of another data set with the same class count would load and distil nonsense."""
    ours = data_info(bundle)
    for stage in ("teacher", "student"):
        cfg = getattr(recipe, stage)
        if cfg is None or not cfg.checkpoint or not (file := Path(cfg.checkpoint) / "summary.json").is_file():
            continue
        theirs = json.loads(file.read_text()).get("data", {})
        if any(theirs.get(key) != ours[key] for key in ("dataset", "num_classes", "image_size")):
            trained = f"{theirs.get('dataset')} ({theirs.get('num_classes')} classes, {theirs.get('image_size')} px)"
            raise InputError(
                f"{stage}.checkpoint {file.parent} was trained on {trained}; this recipe uses "
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


def check_teacher(run: RunDir, bundle: DataBundle) -> dict | None:
    """Flag a teacher at chance in summary.json (teacher.teacher_at_chance and a top-level `warnings` list)
    and print one warning line on stderr; returns the verdict (train.teacher_check). Rank 0 only: it alone
    writes summary.json, which other ranks may read before it is there."""
    if not current_world().is_main:
        return None
    summary = run.read_summary()
    teacher = summary["teacher"]
    qwk = teacher.get("test_qwk") if is_ordinal(bundle.name) else None  # grades: QWK shows learning too
    verdict = teacher_verdict(teacher["test_accuracy"], bundle.test.labels, bundle.num_classes, qwk)
    run.update_summary("teacher", summary["teacher"] | verdict)
    if verdict["teacher_at_chance"]:
        line = warning_line(summary["teacher"], verdict)
        run.update_summary("warnings", [*summary.get("warnings", []), line])
        error_console.print(line, markup=False, highlight=False, soft_wrap=True)
    return verdict


def run_recipe(
    recipe: Recipe,
    run: RunDir,
    data_root: str | None,
    stages: tuple[str, ...] = ("teacher", "student"),
    progress=None,
    checkpointer: Checkpointer | None = None,
    bundle: DataBundle | None = None,
    teacher_logits_file: Path | None = None,
) -> dict:
    """Run the recipe's stages into `run`; returns summary.json's content. `checkpointer` (train.resume)
    saves training state every epoch and, built with resume=True, continues a killed run. `bundle`: the
    data already loaded by prepare_data (the CLI loads it before it touches the run directory).
    `teacher_logits_file`: where the student stage keeps the teacher's logits (default RUN/teacher_logits
    .safetensors; a sweep passes one file for all its points), reused while their key matches."""
    bundle = bundle or prepare_data(recipe, data_root)
    if recipe.student is not None and "student" in stages:  # bad transfer sets fail before any write
        biasfix.check_transfer_set(recipe, bundle.num_classes)
    tensorboard = recipe.tensorboard and current_world().is_main  # only rank 0 writes into the run directory
    ctx = make_context(
        recipe,
        bundle,
        progress,
        RunMetrics(run, tensorboard),
        teacher_logits_file or run.path / "teacher_logits.safetensors",
    )
    run.write_recipe(with_measured_norm(recipe, bundle))
    sizes = {"train_images": len(bundle.train), "test_images": len(bundle.test)}
    source = {"root": bundle.root, "skipped_images": len(bundle.skipped)}  # export / eval / bench read it
    run.update_summary("data", data_info(bundle) | sizes | source)
    if bundle.skipped:  # --skip-bad-images: the count said, the list kept beside the results
        listing = "".join(f"{reason}\n" for _, reason in bundle.skipped)
        atomic_write_text(run.path / "bad_images.txt", listing)
        error_console.print(
            f"warning: skipped {len(bundle.skipped)} unreadable images (e.g. "
            f"{bundle.skipped[0][1]}); list in {run.path / 'bad_images.txt'}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    if (split := split_record(bundle)) is not None:  # which files trained / tested (APTOS), for audits
        atomic_write_text(run.path / "split.json", json.dumps(split, indent=1))
        check_checkpoint_splits(recipe, split)
    teacher = transfer = holdout = None
    if recipe.student is not None and "student" in stages:
        pool, holdout = biasfix.split_holdout(bundle.train, recipe)  # held out before classes are dropped
        transfer = student_train_split(recipe, replace(bundle, train=pool))
    if recipe.teacher is not None and "teacher" in stages:
        teacher = obtain_model("teacher", recipe, bundle, bundle.train, ctx, run, checkpointer=checkpointer)
        check_teacher(run, bundle)
    if recipe.student is not None and "student" in stages:
        kd_teacher = None if recipe.distillation.loss == "none" else teacher  # none: the no-KD baseline
        student = obtain_model(
            "student", recipe, bundle, transfer, ctx, run, checkpointer=checkpointer, teacher=kd_teacher
        )
        if recipe.distillation.bias_fix is not None:
            biasfix.apply_bias_fix(
                run,
                recipe,
                bundle,
                student,
                teacher,
                holdout,
                predict=lambda model, images: predict_logits(model, images, ctx),
                summarize=lambda m: stage_summary(m, bundle, ctx, recipe.student, {}),
            )
    run.update_summary("finished", True)
    return run.read_summary()
