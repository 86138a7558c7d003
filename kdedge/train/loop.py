"""THE training loop, for teachers and students alike. Read `fit` top to bottom.

Data is resident on the training device as uint8 tensors; each step indexes a batch, augments it on
the device, normalises it and takes one optimiser step. When the student sees the same input the
teacher would (no augmentation), the teacher's logits over the training set are computed once
(in eval/inference mode; for jittered input, once per each of the 25 shifts) and indexed per batch instead
of re-running the teacher every step.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import torch
from torch import nn

from kdedge.data.types import Split, normalize
from kdedge.errors import Diverged
from kdedge.losses import LOSSES, TrainingProgress
from kdedge.losses.classic import inverse_frequency_weights
from kdedge.recipe import DistillConfig, StageConfig
from kdedge.runtime.metrics import agreement, classification_report
from kdedge.train import teacher_cache
from kdedge.train.augment import JITTER_VARIANTS, augment_with_variant, jitter_variant
from kdedge.train.devices import autocast
from kdedge.train.distributed import shard
from kdedge.train.optim import optimizer_step, set_step_hyperparameters
from kdedge.train.state import EpochPosition, TrainingState


class MetricsLog(Protocol):
    """Where each epoch's record goes (metrics.jsonl, TensorBoard): kdedge.train.pipeline.RunMetrics."""

    def log(self, record: dict) -> None:
        """Keep one epoch's record."""


@dataclass(frozen=True)
class Context:
    """Where and how to train, fixed for a run: device, normalisation, seed, mixed precision, DDP rank, the
    splits scored after every epoch and where the records go."""

    device: torch.device
    mean: tuple[float, ...]
    std: tuple[float, ...]
    seed: int = 0
    amp: str = "off"
    channels_last: bool = False
    rank: int = 0
    world_size: int = 1
    num_classes: int = 0
    evaluation: Mapping[str, Split] = field(default_factory=dict)  # {'test': ..., 'val': ...} per epoch
    metrics: MetricsLog | None = None  # rank 0 logs each epoch's record here
    progress: object | None = None  # rich.progress.Progress, or None for silence
    # where teacher logits persist between fits (sweep points, resumed runs), keyed; None: in memory only
    teacher_logits_file: Path | None = None


@torch.inference_mode()
def predict_logits(model: nn.Module, images: torch.Tensor, ctx: Context, batch_size: int = 1024) -> torch.Tensor:
    """Logits (N, C) float32 of `model` in eval mode for uint8 images (N, C, H, W)."""
    was_training = model.training
    model.eval()
    outputs = []
    for chunk in images.split(batch_size):
        inputs = normalize(chunk.to(ctx.device, non_blocking=True), ctx.mean, ctx.std)
        if ctx.channels_last:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        with autocast(ctx.amp, ctx.device):
            outputs.append(model(inputs).float())
    model.train(was_training)
    return torch.cat(outputs) if outputs else torch.zeros(0)


def evaluate(
    model: nn.Module, split: Split, ctx: Context, batch_size: int = 1024, logits: torch.Tensor | None = None
) -> dict:
    """accuracy / errors / per-class errors / qwk / mean CE loss of `model` on a split. `logits` (N, C):
    the model's logits on the split when the caller already has them (no second forward pass)."""
    logits = predict_logits(model, split.images, ctx, batch_size) if logits is None else logits
    report = classification_report(logits, split.labels)
    report["loss"] = float(nn.functional.cross_entropy(logits, split.labels.to(logits.device)))
    return report


def teacher_logits_for(
    teacher: nn.Module | None, split: Split, cfg: StageConfig, distill: DistillConfig, ctx: Context
) -> torch.Tensor | None:
    """The cache: teacher logits float32 over the whole training split, (N, C) for unaugmented student input
    or (JITTER_VARIANTS, N, C) for jittered input (the teacher's logits for each of the 25 shifts); None
    when they must be computed per batch (random crops / affine warps, or caching turned off).

    With ctx.teacher_logits_file, logits saved there by an earlier fit are reused when their key
    (teacher_logits_key: teacher weights + data + transform) matches; otherwise computed and saved."""
    if teacher is None or cfg.augment not in ("none", "jitter") or not distill.cache_teacher_logits:
        return None

    def compute() -> torch.Tensor:
        if cfg.augment == "none":
            return predict_logits(teacher, split.images, ctx, cfg.eval_batch_size)
        # 25 teacher passes over the data, once; a live teacher costs one pass per student epoch
        shifted = (jitter_variant(split.images, variant) for variant in range(JITTER_VARIANTS))
        return torch.stack([predict_logits(teacher, images, ctx, cfg.eval_batch_size) for images in shifted])

    key = teacher_logits_key(teacher, split, cfg, ctx)
    return teacher_cache.load_or_compute(ctx.teacher_logits_file, key, compute, ctx.rank == 0, ctx.device)


def teacher_logits_key(teacher: nn.Module, split: Split, cfg: StageConfig, ctx: Context) -> str:
    """sha256 (first 16 hex digits) of everything cached teacher logits depend on: the teacher's
    architecture and weights, the training images (bytes, shape, order) and the transform that feeds
    the teacher (normalisation, augmentation, mixed precision, memory layout, device type)."""
    transform = [list(ctx.mean), list(ctx.std), cfg.augment, ctx.amp, ctx.channels_last, ctx.device.type]
    return teacher_cache.digest_key(teacher, split.images, json.dumps(transform))


def fit(
    model: nn.Module,
    train: Split,
    cfg: StageConfig,
    ctx: Context,
    teacher: nn.Module | None = None,
    distill: DistillConfig | None = None,
    state: TrainingState | None = None,
) -> list[dict]:
    """Train `model` in place for cfg.epochs on `train`; return one metrics record per epoch.

    With a teacher, the loss is the recipe's distillation loss on (student, teacher) logits; without,
    plain cross-entropy. `state` (kdedge.train.resume) carries the optimiser, the shuffling generator and
    where a checkpoint goes; a restored one continues a killed run where it stopped. After every epoch
    the splits of ctx.evaluation are scored, the record is logged and the state is checkpointed.
    Under DDP (ctx.world_size > 1) every rank walks its own shard of the same shuffled order.
    """
    distill = distill if teacher is not None else DistillConfig(loss="none")
    stage = "student" if teacher is not None else "teacher"
    state = state or TrainingState.fresh(stage, model, cfg, ctx.seed)
    if teacher is not None:
        teacher.eval()  # dropout / batch-norm statistics fixed: the soft targets must not be random
    teacher_test_logits = _teacher_test_logits(teacher, ctx, cfg)
    setup = _StepSetup.build(train, cfg, ctx, teacher, distill)
    total_steps = setup.steps_per_epoch * cfg.epochs - state.steps_done(setup.steps_per_epoch)
    task = _progress_task(ctx, state.stage, total_steps)
    for epoch in range(state.epoch, cfg.epochs):
        started = time.perf_counter()
        loss_sum, correct, seen = _train_epoch(model, setup, cfg, ctx, state, epoch, task)
        record = _epoch_record(
            state.stage,
            epoch,
            loss_sum,
            correct,
            seen,
            time.perf_counter() - started,
            state.optimizer,
            model,
            ctx,
            cfg,
            teacher_test_logits,
        )
        state.records.append(record)
        state.save(model, epochs_done=epoch + 1)  # the end-of-epoch checkpoint (rank 0; none without a file)
        if ctx.metrics is not None and ctx.rank == 0:
            ctx.metrics.log(record)  # metrics.jsonl (+ TensorBoard)
        _describe(
            ctx,
            task,
            f"{state.stage} epoch {epoch + 1}/{cfg.epochs} loss {record['train_loss']:.4f}"
            + (f" test acc {record['test_accuracy']:.4f}" if "test_accuracy" in record else ""),
        )
    return state.records


@dataclass(frozen=True)
class _StepSetup:
    """What every step of one fit needs, prepared once: the split on the device (images (N, C, H, W) uint8,
    labels (N,) int64), the teacher and its cached logits, the loss with its keyword arguments (and whether it
    also takes the training progress), the fp16 gradient scaler."""

    images: torch.Tensor
    labels: torch.Tensor
    teacher: nn.Module | None
    cached_teacher_logits: torch.Tensor | None
    loss: Callable[..., torch.Tensor]
    loss_kwargs: dict
    scaler: torch.amp.GradScaler
    steps_per_epoch: int
    takes_progress: bool = False

    @classmethod
    def build(
        cls, train: Split, cfg: StageConfig, ctx: Context, teacher: nn.Module | None, distill: DistillConfig
    ) -> _StepSetup:
        spec = LOSSES.get(distill.loss)
        labels = train.labels.to(ctx.device)
        weighted = cfg.class_weighted_loss
        class_weights = inverse_frequency_weights(labels, ctx.num_classes) if weighted else None
        shared = {"alpha": distill.soft_weight, "temperature": distill.temperature, "class_weights": class_weights}
        loss_kwargs = spec.loop_inputs(shared) | spec.parse_options(distill.loss_kwargs)
        # fp16 gradients underflow without loss scaling (bf16 has fp32's range: no scaler); no-op if disabled
        fp16 = ctx.amp == "fp16" and ctx.device.type == "cuda"
        scaler = torch.amp.GradScaler(ctx.device.type, enabled=fp16)
        cached = teacher_logits_for(teacher, train, cfg, distill, ctx)
        steps_per_epoch = math.ceil(len(labels) / (cfg.batch_size * ctx.world_size))
        return cls(
            train.images.to(ctx.device),
            labels,
            teacher,
            cached,
            spec.fn,
            loss_kwargs,
            scaler,
            steps_per_epoch,
            "progress" in spec.inputs,
        )

    def progress(self, epoch: int, step: int, epochs: int) -> dict[str, TrainingProgress]:
        """{'progress': where the fit stands} for a loss that takes it (DKD's warm-up), else {}."""
        if not self.takes_progress:
            return {}
        return {"progress": TrainingProgress(epoch, epochs, step, self.steps_per_epoch)}

    def teacher_logits(
        self, batch: torch.Tensor, variant: torch.Tensor | None, inputs: torch.Tensor
    ) -> torch.Tensor | None:
        """The teacher's logits (B, C) for exactly the inputs the student sees: from the cache (indexed by
        image, and by jitter variant when jittered), else a live forward pass, else None (no teacher)."""
        if self.cached_teacher_logits is not None:
            return self.cached_teacher_logits[batch if variant is None else (variant, batch)]
        if self.teacher is None:
            return None
        with torch.inference_mode():
            return self.teacher(inputs).float().clone()  # clone: inference tensors cannot enter autograd


def _train_epoch(
    model: nn.Module, setup: _StepSetup, cfg: StageConfig, ctx: Context, state: TrainingState, epoch: int, task
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """One pass over this rank's shard of the epoch's shuffled order (from its saved position when a killed
    run stopped inside it). Returns (loss sum () float32, correct () int64, images seen), kept on the device:
    no host sync per step. A mid-epoch checkpoint is saved whenever one is due."""
    model.train()
    within = state.resumes_within(epoch)
    permutation = within.permutation if within else torch.randperm(len(setup.labels), generator=state.generator)
    order = shard(permutation, ctx.rank, ctx.world_size).to(ctx.device)
    loss_sum = (within.loss_sum.clone() if within else torch.zeros(())).to(ctx.device)
    correct = (within.correct.clone() if within else torch.zeros((), dtype=torch.long)).to(ctx.device)
    for step, batch in enumerate(order.split(cfg.batch_size)):
        if within and step < within.step:
            continue
        set_step_hyperparameters(state.optimizer, cfg, epoch * setup.steps_per_epoch + step, setup.steps_per_epoch)
        inputs, variant = _batch_inputs(setup.images[batch], cfg, ctx, state.generator)
        with autocast(ctx.amp, ctx.device):
            student_logits = model(inputs).float()
            teacher_logits = setup.teacher_logits(batch, variant, inputs)
        progress = setup.progress(epoch, step, cfg.epochs)
        loss = setup.loss(student_logits, teacher_logits, setup.labels[batch], **setup.loss_kwargs, **progress)
        _check_finite(loss, state.stage, epoch, step, ctx)
        optimizer_step(loss, model, state.optimizer, setup.scaler, cfg)
        loss_sum += loss.detach() * len(batch)
        correct += (student_logits.detach().argmax(1) == setup.labels[batch]).sum()
        _advance(ctx, task)
        state.after_step(model, EpochPosition(epoch, step + 1, permutation, loss_sum, correct))
    return loss_sum, correct, len(order)


def _batch_inputs(
    batch_images: torch.Tensor, cfg: StageConfig, ctx: Context, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """uint8 (B, C, H, W) -> augmented, normalised float inputs, and each image's jitter variant
    ((B,) int64, or None when not jittered)."""
    augmented, variant = augment_with_variant(batch_images, cfg.augment, generator)
    inputs = normalize(augmented, ctx.mean, ctx.std)
    if ctx.channels_last:
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    return inputs, variant


def _teacher_test_logits(teacher: nn.Module | None, ctx: Context, cfg: StageConfig) -> torch.Tensor | None:
    """Teacher logits (N_test, C) on the test split, computed once per fit for the agreement metric."""
    if teacher is None or "test" not in ctx.evaluation:
        return None
    return predict_logits(teacher, ctx.evaluation["test"].images, ctx, cfg.eval_batch_size)


def _check_finite(loss: torch.Tensor, stage: str, epoch: int, step: int, ctx: Context) -> None:
    """Stop before a non-finite loss reaches the weights. On GPU only every 32nd step: a host sync per step
    costs throughput, and once the weights are NaN every later loss is too."""
    if (ctx.device.type == "cpu" or step % 32 == 0) and not torch.isfinite(loss.detach()).item():
        raise Diverged(
            f"{stage}: loss became {float(loss.detach())} in epoch {epoch + 1}, "
            f"step {step + 1}; lower the lr (or check the data)",
            stage,
        )


def _epoch_record(
    stage,
    epoch,
    loss_sum,
    correct,
    seen,
    seconds,
    optimizer,
    model,
    ctx,
    cfg,
    teacher_test_logits: torch.Tensor | None = None,
) -> dict:
    """One line of metrics.jsonl; stops the run when the loss stopped being finite. With the teacher's test
    logits (N_test, C) it adds test_agreement: how often the student now picks the teacher's class."""
    if ctx.world_size > 1:
        seen_t = torch.tensor(float(seen), device=ctx.device)
        totals = torch.stack([loss_sum.float(), correct.float(), seen_t])
        torch.distributed.all_reduce(totals)
        loss_sum, correct, seen = totals[0], totals[1], int(totals[2])
    train_loss = float(loss_sum) / max(seen, 1)
    if not math.isfinite(train_loss):
        raise Diverged(
            f"{stage}: loss became {train_loss} in epoch {epoch + 1}; lower the lr "
            "(the last good weights are those of the previous epoch)",
            stage,
        )
    record = {
        "stage": stage,
        "epoch": epoch + 1,
        "train_loss": train_loss,
        "train_accuracy": float(correct) / max(seen, 1),
        "lr": optimizer.param_groups[0]["lr"],
        "epoch_seconds": round(seconds, 3),
    }
    known = {}  # the student's test logits serve both the test metrics and the agreement: one pass
    if teacher_test_logits is not None:
        known["test"] = predict_logits(model, ctx.evaluation["test"].images, ctx, cfg.eval_batch_size)
        record["test_agreement"] = agreement(known["test"], teacher_test_logits)
    for name, split in ctx.evaluation.items():
        report = evaluate(model, split, ctx, cfg.eval_batch_size, known.get(name))
        record.update(
            {f"{name}_loss": report["loss"], f"{name}_accuracy": report["accuracy"], f"{name}_errors": report["errors"]}
        )
    return record


def _progress_task(ctx: Context, description: str, total: int):
    if ctx.progress is None or ctx.rank != 0:
        return None
    return ctx.progress.add_task(description, total=total)


def _advance(ctx: Context, task) -> None:
    if task is not None:
        ctx.progress.advance(task)


def _describe(ctx: Context, task, description: str) -> None:
    if task is not None:
        ctx.progress.update(task, description=description)
