"""THE training loop, for teachers and students alike. Read `fit` top to bottom.

Data is resident on the training device as uint8 tensors; each step indexes a batch, augments it on
the device, normalises it, asks the distillation method (kdedge.train.methods) for the loss and takes one
optimiser step. Teacher logits come from the cache when the student sees the input the teacher would
(kdedge.train.teacher_cache), else from a live teacher pass (always for a feature method, whose hooks collect
the layers' outputs: kdedge.train.features). After every epoch the splits are scored
(kdedge.train.evaluation) and the checkpoint is saved (kdedge.train.checkpoint): one visible call.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from torch import nn

from kdedge.data.types import Split, normalize
from kdedge.errors import Diverged
from kdedge.files.rundir import unwrapped
from kdedge.losses import TrainingProgress
from kdedge.recipe import DistillConfig, StageConfig
from kdedge.train.augment import augment_with_variant
from kdedge.train.checkpoint import Checkpoint
from kdedge.train.context import Context
from kdedge.train.devices import autocast
from kdedge.train.distributed import shard
from kdedge.train.evaluation import score_splits, teacher_test_logits
from kdedge.train.features import FeatureCapture
from kdedge.train.methods import DistillationMethod, LogitLoss
from kdedge.train.optim import optimizer_step, set_step_hyperparameters
from kdedge.train.state_file import EpochPosition
from kdedge.train.teacher_cache import teacher_logits_for


def fit(
    model: nn.Module,
    train: Split,
    cfg: StageConfig,
    ctx: Context,
    teacher: nn.Module | None = None,
    distill: DistillConfig | None = None,
    checkpoint: Checkpoint | None = None,
    *,
    method: DistillationMethod | None = None,
) -> list[dict]:
    """Train `model` in place for cfg.epochs on `train`; return one metrics record per epoch. The model
    ends with the weights of the epoch cfg.keep names (the last, or the best on the validation split), or
    with cfg.ema_decay the moving average of its weights (kdedge.train.checkpoint).

    With a teacher, the loss is the distillation method on (student, teacher) logits: `method`, or the
    recipe's loss (methods.LogitLoss); without, plain cross-entropy. `checkpoint` (kdedge.train.checkpoint)
    carries the optimiser, the shuffling generator and where the state is saved; a restored one continues
    a killed run where it stopped. Under DDP (ctx.world_size > 1) every rank walks its own shard of the
    same shuffled order.
    """
    distill = distill if teacher is not None else DistillConfig(loss="none")
    if checkpoint is None:  # kept in memory, nothing written
        checkpoint = Checkpoint.fresh("student" if teacher is not None else "teacher", model, cfg, ctx.seed)
    stage = checkpoint.stage  # a student trained alone (the no-KD baseline) is still the student
    if teacher is not None:
        teacher.eval()  # dropout / batch-norm statistics fixed: the soft targets must not be random
    teacher_scores = teacher_test_logits(teacher, ctx, cfg.eval_batch_size)  # for the agreement metric
    setup = _StepSetup.build(train, cfg, ctx, teacher, distill, method)
    steps_left = setup.steps_per_epoch * cfg.epochs - checkpoint.steps_done(setup.steps_per_epoch)
    task = _progress_task(ctx, stage, steps_left)
    for epoch in range(checkpoint.epochs_done, cfg.epochs):
        started = time.perf_counter()
        totals = _train_epoch(model, setup, cfg, ctx, checkpoint, epoch, task).all_reduced(ctx)
        record = _train_record(stage, epoch, totals, checkpoint.optimizer, time.perf_counter() - started)
        record |= _scores(model, checkpoint, ctx, cfg, teacher_scores)
        checkpoint.save(model, record)  # the end-of-epoch checkpoint (rank 0 of a run; in memory otherwise)
        _report(ctx, task, record, cfg.epochs)
    checkpoint.use_kept_weights(model)  # best_val: that epoch's weights; ema_decay: the average; else as they are
    return checkpoint.records


@dataclass(frozen=True)
class _StepSetup:
    """What every step of one fit needs, prepared once: the split on the device (images (N, C, H, W) uint8,
    labels (N,) int64), the teacher and its cached logits, the distillation method, the fp16 gradient
    scaler."""

    images: torch.Tensor
    labels: torch.Tensor
    teacher: nn.Module | None
    cached_teacher_logits: torch.Tensor | None
    method: DistillationMethod
    scaler: torch.amp.GradScaler
    steps_per_epoch: int
    capture: FeatureCapture | None = None  # a feature method's hooks: the layers' outputs of each pass

    @classmethod
    def build(
        cls,
        train: Split,
        cfg: StageConfig,
        ctx: Context,
        teacher: nn.Module | None,
        distill: DistillConfig,
        method: DistillationMethod | None = None,
    ) -> _StepSetup:
        labels = train.labels.to(ctx.device)
        if method is None and distill.feature_loss is not None and teacher is not None:
            raise ValueError("a feature method is built before the optimiser (features.FeatureMethod.build)")
        method = method or LogitLoss.from_recipe(distill, cfg, labels, ctx.num_classes)
        capture = getattr(method, "capture", None)  # a feature method's hooks (kdedge.train.features)
        # fp16 gradients underflow without loss scaling (bf16 has fp32's range: no scaler); no-op if disabled
        fp16 = ctx.amp == "fp16" and ctx.device.type == "cuda"
        scaler = torch.amp.GradScaler(ctx.device.type, enabled=fp16)
        cached = teacher_logits_for(teacher, train, cfg, distill, ctx)
        steps_per_epoch = math.ceil(len(labels) / (cfg.batch_size * ctx.world_size))
        return cls(train.images.to(ctx.device), labels, teacher, cached, method, scaler, steps_per_epoch, capture)

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
            logits = self.teacher(inputs).float().clone()  # clone: inference tensors cannot enter autograd
        if self.capture is not None:  # the hooked teacher layers, out of inference mode for the loss
            self.capture.teacher.update({k: v.clone() for k, v in self.capture.teacher.items()})
        return logits

    def features(self) -> tuple[dict | None, dict | None]:
        """The student's and the teacher's captured layer outputs of this step (None, None: no feature method)."""
        return (None, None) if self.capture is None else (self.capture.student, self.capture.teacher)


@dataclass
class EpochTotals:
    """One epoch's running sums on the device (no host sync per step): loss_sum () float32 (sum of
    per-image losses), correct () int64, seen: images."""

    loss_sum: torch.Tensor
    correct: torch.Tensor
    seen: int

    def all_reduced(self, ctx: Context) -> EpochTotals:
        """The sums over every DDP rank (itself on one process)."""
        if ctx.world_size <= 1:
            return self
        seen = torch.tensor(float(self.seen), device=ctx.device)
        totals = torch.stack([self.loss_sum.float(), self.correct.float(), seen])
        torch.distributed.all_reduce(totals)
        return EpochTotals(totals[0], totals[1], int(totals[2]))


def _train_epoch(
    model: nn.Module, setup: _StepSetup, cfg: StageConfig, ctx: Context, checkpoint: Checkpoint, epoch: int, task
) -> EpochTotals:
    """One pass over this rank's shard of the epoch's shuffled order (from its saved position when a killed
    run stopped inside it). A mid-epoch checkpoint is saved whenever one is due."""
    model.train()
    within = checkpoint.resumes_within(epoch)
    permutation = within.permutation if within else torch.randperm(len(setup.labels), generator=checkpoint.generator)
    order = shard(permutation, ctx.rank, ctx.world_size).to(ctx.device)
    loss_sum = (within.loss_sum.clone() if within else torch.zeros(())).to(ctx.device)
    correct = (within.correct.clone() if within else torch.zeros((), dtype=torch.long)).to(ctx.device)
    for step, batch in enumerate(order.split(cfg.batch_size)):
        if within and step < within.step:
            continue
        global_step = epoch * setup.steps_per_epoch + step
        loss, student_logits = _train_step(model, setup, cfg, ctx, checkpoint, batch, global_step)
        loss_sum += loss * len(batch)
        correct += (student_logits.argmax(1) == setup.labels[batch]).sum()
        _advance(ctx, task)
        checkpoint.after_step(model, EpochPosition(epoch, step + 1, permutation, loss_sum, correct))
    return EpochTotals(loss_sum, correct, len(order))


def _train_step(
    model: nn.Module,
    setup: _StepSetup,
    cfg: StageConfig,
    ctx: Context,
    checkpoint: Checkpoint,
    batch: torch.Tensor,
    global_step: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimiser step on the training images `batch` ((B,) int64 indices into the split). Returns the
    loss () and the student's logits (B, C), both detached."""
    set_step_hyperparameters(checkpoint.optimizer, cfg, global_step, setup.steps_per_epoch)  # lr, momentum
    inputs, variant = _batch_inputs(setup.images[batch], cfg, ctx, checkpoint.generator)
    with autocast(ctx.amp, ctx.device):
        student_logits = model(inputs).float()
        teacher_logits = setup.teacher_logits(batch, variant, inputs)
    # the distillation method (kdedge.train.methods): logits and targets in, the step's loss out
    epoch, step = divmod(global_step, setup.steps_per_epoch)
    progress = TrainingProgress(epoch, cfg.epochs, step, setup.steps_per_epoch)  # for warm-ups (DKD)
    student_features, teacher_features = setup.features()  # filled by the hooks of a feature method
    loss = setup.method(
        student_logits,
        teacher_logits,
        setup.labels[batch],
        progress=progress,
        student_features=student_features,
        teacher_features=teacher_features,
    )
    _check_finite(loss, checkpoint.stage, epoch, step, ctx)
    optimizer_step(loss, model, checkpoint.optimizer, setup.scaler, cfg)
    checkpoint.update_average(model, global_step)  # the weights' moving average (ema_decay), if any
    if setup.capture is not None:
        setup.capture.clear()  # the step's activations are not kept until the next one
    return loss.detach(), student_logits.detach()


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


def _scores(
    model: nn.Module, checkpoint: Checkpoint, ctx: Context, cfg: StageConfig, teacher_scores: torch.Tensor | None
) -> dict:
    """The end-of-epoch scores of the weights the stage keeps: the model's, or with a moving average of the
    weights (ema_decay) the average's, followed by the raw weights' as raw_<key>."""
    # scored by the plain module: a compiled one would compile again for eval mode, inference mode and
    # every evaluation batch size (minutes on a CPU) to save seconds of scoring
    scores = score_splits(unwrapped(model), ctx, cfg.eval_batch_size, teacher_scores)
    if checkpoint.averaged is None:
        return scores
    raw = {f"raw_{key}": value for key, value in scores.items()}
    return score_splits(checkpoint.averaged, ctx, cfg.eval_batch_size, teacher_scores) | raw


def _check_finite(loss: torch.Tensor, stage: str, epoch: int, step: int, ctx: Context) -> None:
    """Stop before a non-finite loss reaches the weights. On GPU only every 32nd step of an epoch: a host
    sync per step costs throughput, and once the weights are NaN every later loss is too."""
    if (ctx.device.type == "cpu" or step % 32 == 0) and not torch.isfinite(loss.detach()).item():
        raise Diverged(
            f"{stage}: loss became {float(loss.detach())} in epoch {epoch + 1}, "
            f"step {step + 1}; lower the lr (or check the data)",
            stage,
        )


def _train_record(
    stage: str, epoch: int, totals: EpochTotals, optimizer: torch.optim.Optimizer, seconds: float
) -> dict:
    """The training half of one line of metrics.jsonl (the scores of the splits follow); stops the run
    when the epoch's mean loss is not finite."""
    train_loss = float(totals.loss_sum) / max(totals.seen, 1)
    if not math.isfinite(train_loss):
        raise Diverged(
            f"{stage}: loss became {train_loss} in epoch {epoch + 1}; lower the lr "
            "(the last good weights are those of the previous epoch)",
            stage,
        )
    return {
        "stage": stage,
        "epoch": epoch + 1,
        "train_loss": train_loss,
        "train_accuracy": float(totals.correct) / max(totals.seen, 1),
        "lr": optimizer.param_groups[0]["lr"],
        "epoch_seconds": round(seconds, 3),
    }


def _report(ctx: Context, task, record: dict, epochs: int) -> None:
    """The epoch's record into metrics.jsonl (+ TensorBoard) on rank 0, and its line on the progress bar."""
    if ctx.metrics is not None and ctx.rank == 0:
        ctx.metrics.log(record)
    if task is not None:
        split = "val" if "val_accuracy" in record else "test"  # never invite tuning on the test set
        scored = f" {split} acc {record[f'{split}_accuracy']:.4f}" if f"{split}_accuracy" in record else ""
        line = f"{record['stage']} epoch {record['epoch']}/{epochs} loss {record['train_loss']:.4f}{scored}"
        ctx.progress.update(task, description=line)


def _progress_task(ctx: Context, description: str, total: int):
    if ctx.progress is None or ctx.rank != 0:
        return None
    return ctx.progress.add_task(description, total=total)


def _advance(ctx: Context, task) -> None:
    if task is not None:
        ctx.progress.advance(task)
