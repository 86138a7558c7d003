"""What `kdedge train` / `kdedge distill` do: data -> teacher (trained or loaded) -> student -> bias fix, with
every result returned in memory and RUN/summary.json written once, at the end.

The public pipeline API (also what sweeps, the Ray backend and searches call, so that all of them build the
teacher and its cached logits alike):

    bundle = prepare_data(recipe, data_root)               # kdedge.train.prepare
    teacher = obtain_teacher(recipe, bundle, run)          # StageResult: .model (eval), .summary
    student = distill_student(recipe, bundle, teacher.model, run)
    logits = teacher_logits(recipe, bundle, teacher.model, ctx)   # precompute the student's cached logits
    summary = run_recipe(recipe, run, data_root)           # all of the above into a run directory

`run` (a RunDir) is optional for the stage functions: without one nothing is written and nothing resumes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from kdedge.data.types import DataBundle, Split
from kdedge.errors import Diverged, RuntimeFailure
from kdedge.files.rundir import RunDir, data_info
from kdedge.models.weights import build_stage_model, load_weights_into, weights_path
from kdedge.recipe import Recipe, StageConfig
from kdedge.train import biasfix
from kdedge.train.checkpoint import Checkpoint
from kdedge.train.context import Context
from kdedge.train.distributed import current_world, training_module
from kdedge.train.evaluation import stage_summary
from kdedge.train.features import FeatureMethod, WithAdapters, check_recipe_layers
from kdedge.train.loop import fit
from kdedge.train.prepare import (
    RunMetrics,
    check_checkpoint_data,
    check_checkpoint_splits,
    check_keep,
    check_stages_fit_data,
    data_record,
    make_context,
    prepare_data,
    student_train_split,
    transfer_set,
    with_measured_norm,
    write_run_files,
)
from kdedge.train.resume import Checkpointer
from kdedge.train.teacher_cache import teacher_logits_for
from kdedge.train.teacher_check import teacher_verdict, warning_line
from kdedge.ui.console import error_console, is_ordinal

__all__ = [  # the pipeline API, and the preparation steps it is built from (kdedge.train.prepare)
    "StageResult",
    "obtain_teacher",
    "distill_student",
    "teacher_logits",
    "check_teacher",
    "run_recipe",
    "prepare_data",
    "make_context",
    "transfer_set",
    "student_train_split",
    "with_measured_norm",
    "check_stages_fit_data",
    "check_checkpoint_data",
    "check_checkpoint_splits",
    "check_keep",
    "stage_summary",
]


@dataclass(frozen=True)
class StageResult:
    """A finished stage: its model (eval mode, on the context's device) and the summary.json entries it
    produced: {'teacher': {...}}, {'student': {...}}, or after a bias fix {'student': before,
    'student_bias_fixed': after}."""

    model: nn.Module
    entries: dict[str, dict]

    @property
    def summary(self) -> dict:
        """The entry of the weights `model` holds now (student_bias_fixed after a bias fix)."""
        return list(self.entries.values())[-1]


def obtain_teacher(
    recipe: Recipe,
    bundle: DataBundle,
    run: RunDir | None = None,
    *,
    ctx: Context | None = None,
    checkpointer: Checkpointer | None = None,
) -> StageResult:
    """The recipe's teacher: loaded from teacher.checkpoint, loaded from `run` when a resumed run finished
    it, else trained on the whole training split. With `run`, its weights and results go there."""
    ctx = ctx or make_context(recipe, bundle)
    return _obtain_stage("teacher", recipe, bundle, bundle.train, ctx, run, checkpointer)


def distill_student(
    recipe: Recipe,
    bundle: DataBundle,
    teacher: nn.Module | None,
    run: RunDir | None = None,
    *,
    ctx: Context | None = None,
    checkpointer: Checkpointer | None = None,
) -> StageResult:
    """The recipe's student, distilled from `teacher` (eval mode; None or distillation.loss: none trains it
    alone) on the transfer set, then bias-fixed when the recipe asks. Teacher logits are cached in
    ctx.teacher_logits_file (RUN/teacher_logits.safetensors by default) and reused while their key matches."""
    if ctx is None:
        logits_file = run.path / "teacher_logits.safetensors" if run is not None else None
        ctx = make_context(recipe, bundle, teacher_logits_file=logits_file)
    transfer, holdout = transfer_set(recipe, bundle)
    kd_teacher = None if recipe.distillation.loss == "none" else teacher  # none: the no-KD baseline
    result = _obtain_stage("student", recipe, bundle, transfer, ctx, run, checkpointer, kd_teacher)
    if recipe.distillation.bias_fix is None or "student_bias_fixed" in result.entries:  # done before a stop
        return result
    if run is not None:
        run.save_weights("student_unfixed", result.model, recipe)  # before the fix changes it in place
    entries = biasfix.apply_bias_fix(recipe, bundle, result.model, result.entries["student"], teacher, holdout, ctx)
    if run is not None:  # the fixed student with both entries: a stop after this never fixes twice
        run.save_weights("student", result.model, recipe, {"data": data_record(bundle)} | entries)
    return StageResult(result.model, entries)


def teacher_logits(recipe: Recipe, bundle: DataBundle, teacher: nn.Module, ctx: Context) -> torch.Tensor | None:
    """The teacher's logits over the student's transfer set, exactly as distill_student's fit computes them
    first: (N, C) float32, or (25, N, C) for jittered input; saved in ctx.teacher_logits_file under their
    key. None when the recipe caches none (random augmentations, or cache_teacher_logits: false)."""
    transfer, _ = transfer_set(recipe, bundle)
    return teacher_logits_for(teacher.eval(), transfer, recipe.student, recipe.distillation, ctx)


def check_teacher(teacher_entry: dict, bundle: DataBundle) -> dict:
    """{'teacher': the entry with its verdict (train.teacher_check)}, plus {'warnings': [line]} when the
    teacher is at chance; that line is printed on stderr (rank 0 only)."""
    qwk = teacher_entry.get("test_qwk") if is_ordinal(bundle.name) else None  # grades: QWK shows learning too
    verdict = teacher_verdict(teacher_entry["test_accuracy"], bundle.test.labels, bundle.num_classes, qwk)
    entries = {"teacher": teacher_entry | verdict}
    if verdict["teacher_at_chance"]:
        line = warning_line(teacher_entry, verdict)
        entries["warnings"] = [line]
        if current_world().is_main:
            error_console.print(line, markup=False, highlight=False, soft_wrap=True)
    return entries


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
    """Run the recipe's stages into `run`; returns the summary, which is written to RUN/summary.json once,
    at the end. `checkpointer` (train.resume) saves training state every epoch and, built with
    resume=True, continues a stopped run. `bundle`: the data already loaded by prepare_data (the CLI loads
    it before it touches the run directory). `teacher_logits_file`: where the student stage keeps the
    teacher's logits (default RUN/teacher_logits.safetensors; a sweep passes one file for all its points)."""
    bundle = bundle or prepare_data(recipe, data_root)
    students = recipe.student is not None and "student" in stages
    check_keep(recipe, bundle)
    check_recipe_layers(recipe, data_info(bundle))  # a misnamed feature layer fails before the teacher trains
    if students:  # bad transfer sets fail before any write (and before the teacher trains)
        biasfix.check_transfer_set(recipe, bundle.num_classes)
        transfer_set(recipe, bundle)
    metrics = RunMetrics(run, recipe.tensorboard and current_world().is_main)  # rank 0 alone writes files
    logits_file = teacher_logits_file or run.path / "teacher_logits.safetensors"
    ctx = make_context(recipe, bundle, progress, metrics, logits_file)
    write_run_files(recipe, bundle, run)
    summary, teacher = {"data": data_record(bundle)}, None
    if recipe.teacher is not None and "teacher" in stages:
        result = obtain_teacher(recipe, bundle, run, ctx=ctx, checkpointer=checkpointer)
        summary |= check_teacher(result.summary, bundle)
        teacher = result.model
    if students:
        summary |= distill_student(recipe, bundle, teacher, run, ctx=ctx, checkpointer=checkpointer).entries
    run.write_summary(summary | {"finished": True})
    return summary | {"finished": True}


# -- one stage ---------------------------------------------------------------------------------------------
def build_stage(cfg: StageConfig, bundle: DataBundle, ctx: Context, seed: int) -> nn.Module:
    """The stage's model as every caller builds it: seeded (the same init whether or not an earlier stage
    ran), on the device, channels-last when the recipe asks. Its repr is part of the teacher-logit key."""
    torch.manual_seed(seed)
    model = build_stage_model(cfg, data_info(bundle)).to(ctx.device)
    return model.to(memory_format=torch.channels_last) if ctx.channels_last else model


def _obtain_stage(
    stage: str,
    recipe: Recipe,
    bundle: DataBundle,
    train: Split,
    ctx: Context,
    run: RunDir | None,
    checkpointer: Checkpointer | None,
    teacher: nn.Module | None = None,
) -> StageResult:
    """Train one stage (or load it: its checkpoint, or its finished weights on resume); with `run`, save
    its weights with its results in their header and drop its training state."""
    cfg: StageConfig = getattr(recipe, stage)
    model = build_stage(cfg, bundle, ctx, recipe.seed)
    if run is not None:  # without one from the CLI (a sweep point): continue the point's saved state
        checkpointer = checkpointer or Checkpointer(run, recipe, resume=True)
    if checkpointer is not None and (finished := checkpointer.finished(stage)) is not None:
        load_weights_into(model, run.weights(stage), stage)  # --resume: a finished stage is never retrained
        return StageResult(model.eval(), finished)
    started, cpu_started = time.perf_counter(), time.process_time()
    if cfg.checkpoint:
        load_weights_into(model, weights_path(cfg.checkpoint, stage), stage)
        extra = {"source": str(weights_path(cfg.checkpoint, stage))}
    else:
        extra = _train_stage(stage, model, train, cfg, ctx, teacher, recipe, checkpointer)
    extra["train_seconds"] = round(time.perf_counter() - started, 2)
    extra["train_cpu_seconds"] = round(time.process_time() - cpu_started, 2)  # all threads; less noisy
    entries = {stage: stage_summary(model, bundle, ctx, cfg, extra)}
    if run is not None:
        run.save_weights(stage, model, recipe, {"data": data_record(bundle)} | entries)
        checkpointer.finish(stage)
    return StageResult(model.eval(), entries)


def _train_stage(
    stage: str,
    model: nn.Module,
    train: Split,
    cfg: StageConfig,
    ctx: Context,
    teacher: nn.Module | None,
    recipe: Recipe,
    checkpointer: Checkpointer | None,
) -> dict:
    """fit under the DDP / compile wrappers, from the stage's checkpoint; a failure says where the last
    good checkpoint is (a NaN stop keeps its type: the CLI offers the retry with a lower lr, since --resume
    would refuse a changed lr). Returns the stage's training facts for its summary entry."""
    method = None  # the recipe's logit loss (built by fit), or a feature method with its hooks and adapters
    if teacher is not None and recipe.distillation.feature_loss is not None:
        method = FeatureMethod.build(recipe.distillation, cfg, model, teacher, train, ctx)
    module = model if method is None or not len(method.adapters) else WithAdapters(model, method.adapters)
    trained = training_module(module, ctx.device, ctx.world_size, recipe.compile)
    if checkpointer is not None:
        checkpoint = checkpointer.open(stage, trained, cfg, ctx.seed, ctx.rank)  # restored when resuming
    else:
        checkpoint = Checkpoint.fresh(stage, trained, cfg, ctx.seed)
    try:
        records = fit(trained, train, cfg, ctx, teacher, recipe.distillation, checkpoint, method=method)
    except Diverged as err:
        raise Diverged(f"{err}; last good checkpoint: {checkpoint.last_good}", stage, cfg.lr) from None
    except RuntimeFailure as err:  # the same type (a full disk stays DiskFull), one more clause
        err.args = (f"{err}; last good checkpoint: {checkpoint.last_good}",)
        raise
    finally:
        if method is not None:
            method.capture.remove()  # the hooks end with the fit: the student leaves as it was built
    kept = checkpoint.kept_epoch  # the last, or the best validation epoch (cfg.keep): fit ends with its weights
    return {"epochs": len(records), "kept_epoch": kept, "train_accuracy": records[kept - 1]["train_accuracy"]}
