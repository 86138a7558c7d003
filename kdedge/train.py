"""THE training loop, for teachers and students alike. Read `fit` top to bottom.

Data is resident on the training device as uint8 tensors; each step indexes a batch, augments it on
the device, normalises it and takes one optimiser step. When the student sees the same input the
teacher would (no augmentation), the teacher's logits over the training set are computed once
(in eval/inference mode) and indexed per batch instead of re-running the teacher every step.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from torch import nn

from kdedge.checkpoint import save_state
from kdedge.data import Split, augment, normalize
from kdedge.distributed import shard
from kdedge.errors import InputError, RuntimeFailure
from kdedge.losses import LOSSES
from kdedge.metrics import agreement, classification_report
from kdedge.recipe import DistillConfig, StageConfig


@dataclass
class EpochPosition:
    """Where training stands inside an epoch, so a run killed mid-epoch resumes at the same step.

    epoch: 0-based epoch in progress; step: next step to run; permutation: (N,) int64, this epoch's
    shuffled order of the whole training split; loss_sum: () float32; correct: () int64 (steps so far).
    """

    epoch: int
    step: int
    permutation: torch.Tensor
    loss_sum: torch.Tensor
    correct: torch.Tensor


@dataclass
class Context:
    """Where and how to train: device, normalisation, seed, mixed precision, optional DDP rank."""

    device: torch.device
    mean: tuple[float, ...]
    std: tuple[float, ...]
    seed: int = 0
    amp: str = "off"
    channels_last: bool = False
    rank: int = 0
    world_size: int = 1
    num_classes: int = 0
    on_epoch: Callable[[dict], None] = lambda record: None
    on_step: Callable[[EpochPosition], None] = lambda position: None  # kdedge.resume's timed checkpoints
    progress: object | None = None  # rich.progress.Progress, or None for silence
    notes: list[str] = field(default_factory=list)
    # where teacher logits persist between fits (sweep points, resumed runs), keyed; None: in memory only
    teacher_logits_file: Path | None = None


def resolve_device(name: str) -> torch.device:
    """'auto' -> CUDA when present else CPU; an explicit 'cuda' without a GPU is bad input."""
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("device: 'cuda' requested but no CUDA device is present (use device=auto or cpu)")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def describe_device(name: str) -> str:
    """The one line a run prints about where it trains, e.g. 'device: cpu (auto: no CUDA device found)'."""
    device = resolve_device(name)
    if name != "auto":
        return f"device: {device.type} (from the recipe)"
    found = "no CUDA device found" if device.type == "cpu" else f"CUDA found: {torch.cuda.get_device_name(0)}"
    return f"device: {device.type} (auto: {found})"


def autocast(ctx: Context):
    if ctx.amp == "off" or ctx.device.type != "cuda":
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=torch.bfloat16 if ctx.amp == "bf16" else torch.float16)


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
        with autocast(ctx):
            outputs.append(model(inputs).float())
    model.train(was_training)
    return torch.cat(outputs) if outputs else torch.zeros(0)


def evaluate(model: nn.Module, split: Split, ctx: Context, batch_size: int = 1024,
             logits: torch.Tensor | None = None) -> dict:  # fmt: skip
    """accuracy / errors / per-class errors / qwk / mean CE loss of `model` on a split. `logits` (N, C):
    the model's logits on the split when the caller already has them (no second forward pass)."""
    logits = predict_logits(model, split.images, ctx, batch_size) if logits is None else logits
    report = classification_report(logits, split.labels)
    report["loss"] = float(nn.functional.cross_entropy(logits, split.labels.to(logits.device)))
    return report


def make_optimizer(model: nn.Module, cfg: StageConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0,
                               weight_decay=cfg.weight_decay)  # fmt: skip
    optimizer_cls = torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.AdamW
    return optimizer_cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def lr_factor(cfg: StageConfig, step: int, steps_per_epoch: int) -> float:
    """Multiplier of the base lr at optimiser step `step` (warm-up, then the recipe's schedule)."""
    epoch = step / steps_per_epoch
    if cfg.warmup_epochs and epoch < cfg.warmup_epochs:
        return (step + 1) / (cfg.warmup_epochs * steps_per_epoch)
    progress = (epoch - cfg.warmup_epochs) / max(cfg.epochs - cfg.warmup_epochs, 1e-9)
    if cfg.schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
    if cfg.schedule == "step":
        return cfg.step_gamma ** int(epoch // cfg.step_epochs)
    if cfg.schedule == "onecycle":  # linear up for 25%, linear down to 0
        return min(progress / 0.25, (1 - progress) / 0.75) if progress < 1 else 0.0
    return 1.0


def apply_max_norm(model: nn.Module, max_norm: float) -> None:
    """Hinton et al.'s constraint: rescale each hidden unit's incoming weight vector to L2 norm <= max_norm."""
    with torch.no_grad():
        for layer in model.modules():
            if isinstance(layer, nn.Linear):
                layer.weight.copy_(torch.renorm(layer.weight, p=2, dim=0, maxnorm=max_norm))


def teacher_logits_for(teacher: nn.Module | None, split: Split, cfg: StageConfig, distill: DistillConfig,
                       ctx: Context) -> torch.Tensor | None:  # fmt: skip
    """The cache: teacher logits (N, C) float32 over the whole training split, or None when they must be
    computed per batch (augmented student input, or caching turned off).

    With ctx.teacher_logits_file, logits saved there by an earlier fit are reused when their key
    (teacher_logits_key: teacher weights + data + transform) matches; otherwise computed and saved."""
    if teacher is None or cfg.augment != "none" or not distill.cache_teacher_logits:
        return None
    path = ctx.teacher_logits_file
    if path is None:
        return predict_logits(teacher, split.images, ctx, cfg.eval_batch_size)
    key = teacher_logits_key(teacher, split, cfg, ctx)
    logits = _read_teacher_logits(path, key)
    if logits is not None:
        ctx.notes.append(f"teacher logits: reused {path} (key {key})")
        return logits.to(ctx.device)
    logits = predict_logits(teacher, split.images, ctx, cfg.eval_batch_size)
    if ctx.rank == 0:  # under DDP every rank computes the same logits; one writer
        save_state(path, {"logits": logits}, {"kdedge.teacher_logits_key": key})
    ctx.notes.append(f"teacher logits: computed for {len(split)} images, saved to {path} (key {key})")
    return logits


def teacher_logits_key(teacher: nn.Module, split: Split, cfg: StageConfig, ctx: Context) -> str:
    """sha256 (first 16 hex digits) of everything cached teacher logits depend on: the teacher's
    architecture and weights, the training images (bytes, shape, order) and the transform that feeds
    the teacher (normalisation, augmentation, mixed precision, memory layout, device type)."""
    digest = hashlib.sha256(repr(teacher).encode())
    for name, tensor in teacher.state_dict().items():
        digest.update(f"{name}{tuple(tensor.shape)}{tensor.dtype}".encode())
        digest.update(_raw_bytes(tensor))
    digest.update(f"{tuple(split.images.shape)}{split.images.dtype}".encode())
    digest.update(_raw_bytes(split.images))
    transform = [list(ctx.mean), list(ctx.std), cfg.augment, ctx.amp, ctx.channels_last, ctx.device.type]
    digest.update(json.dumps(transform).encode())
    return digest.hexdigest()[:16]


def _raw_bytes(tensor: torch.Tensor) -> memoryview:
    """The tensor's bytes (any dtype, bf16 included) without a copy when it is already on the CPU."""
    return memoryview(tensor.detach().reshape(-1).contiguous().cpu().view(torch.uint8).numpy())


def _read_teacher_logits(path: Path, key: str) -> torch.Tensor | None:
    """Logits saved under `key`, or None (no file, another key, unreadable: recompute, it is only a cache)."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            if (handle.metadata() or {}).get("kdedge.teacher_logits_key") != key:
                return None
            return handle.get_tensor("logits")
    except (SafetensorError, OSError):
        return None


def fit(model: nn.Module, train: Split, cfg: StageConfig, ctx: Context, stage: str,
        evaluation: dict[str, Split], teacher: nn.Module | None = None, distill: DistillConfig | None = None,
        start_epoch: int = 0, optimizer: torch.optim.Optimizer | None = None,
        generator: torch.Generator | None = None,
        position: EpochPosition | None = None) -> list[dict]:  # fmt: skip
    """Train `model` in place for cfg.epochs on `train`; return one metrics record per epoch.

    start_epoch / optimizer / generator / position continue a checkpointed run (kdedge.resume).

    With a teacher, the loss is the recipe's distillation loss on (student, teacher) logits; without,
    plain cross-entropy. `evaluation` maps split names ('val', 'test') to the splits scored each epoch.
    Under DDP (ctx.world_size > 1) every rank walks its own shard of the same shuffled order.
    """
    distill = distill if teacher is not None else DistillConfig(loss="none")
    if teacher is not None:
        teacher.eval()  # dropout / batch-norm statistics fixed: the soft targets must not be random
    teacher_test_logits = _teacher_test_logits(teacher, evaluation, ctx, cfg)
    loss_fn = LOSSES.get(distill.loss)
    alpha, temperature = distill.soft_weight, distill.temperature
    optimizer = optimizer or make_optimizer(model, cfg)
    generator = generator or torch.Generator().manual_seed(ctx.seed)
    images, labels = train.images.to(ctx.device), train.labels.to(ctx.device)
    cached_teacher_logits = teacher_logits_for(teacher, train, cfg, distill, ctx)
    class_weights = _class_weights(labels, ctx, cfg)
    steps_per_epoch = math.ceil(len(labels) / (cfg.batch_size * ctx.world_size))
    records = []
    done_steps = steps_per_epoch * start_epoch + (position.step if position else 0)
    task = _progress_task(ctx, stage, steps_per_epoch * cfg.epochs - done_steps)
    for epoch in range(start_epoch, cfg.epochs):
        started = time.perf_counter()
        model.train()
        within = position if position is not None and epoch == start_epoch else None  # resumed mid-epoch
        permutation = within.permutation if within else torch.randperm(len(labels), generator=generator)
        order = shard(permutation, ctx.rank, ctx.world_size).to(ctx.device)
        # summed on device: no .item() sync per step
        loss_sum = within.loss_sum.clone() if within else torch.zeros(())
        correct = within.correct.clone() if within else torch.zeros((), dtype=torch.long)
        loss_sum, correct = loss_sum.to(ctx.device), correct.to(ctx.device)
        for step, batch in enumerate(order.split(cfg.batch_size)):
            if within and step < within.step:
                continue
            for group in optimizer.param_groups:
                group["lr"] = cfg.lr * lr_factor(cfg, epoch * steps_per_epoch + step, steps_per_epoch)
            inputs = normalize(augment(images[batch], cfg.augment, generator), ctx.mean, ctx.std)
            if ctx.channels_last:
                inputs = inputs.contiguous(memory_format=torch.channels_last)
            with autocast(ctx):
                student_logits = model(inputs).float()
                if cached_teacher_logits is not None:
                    teacher_logits = cached_teacher_logits[batch]
                elif teacher is not None:
                    with torch.inference_mode():
                        teacher_logits = teacher(inputs).float().clone()
                else:
                    teacher_logits = None
            loss = loss_fn(student_logits, teacher_logits, labels[batch], alpha, temperature, class_weights)
            _check_finite(loss, stage, epoch, step, ctx)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if cfg.max_norm:
                apply_max_norm(model, cfg.max_norm)
            loss_sum += loss.detach() * len(batch)
            correct += (student_logits.detach().argmax(1) == labels[batch]).sum()
            _advance(ctx, task)
            ctx.on_step(EpochPosition(epoch, step + 1, permutation, loss_sum, correct))
        seconds = time.perf_counter() - started
        known = {}  # the student's test logits serve both the test metrics and the agreement: one pass
        if teacher_test_logits is not None:
            known["test"] = predict_logits(model, evaluation["test"].images, ctx, cfg.eval_batch_size)
        record = _epoch_record(stage, epoch, loss_sum, correct, len(order), seconds, optimizer, model,
                               evaluation, ctx, cfg, known)  # fmt: skip
        if teacher_test_logits is not None:  # how often the student now picks the teacher's class
            record["test_agreement"] = agreement(known["test"], teacher_test_logits)
        records.append(record)
        ctx.on_epoch(record)
        _describe(ctx, task, f"{stage} epoch {epoch + 1}/{cfg.epochs} loss {record['train_loss']:.4f}"
                  + (f" test acc {record['test_accuracy']:.4f}" if "test_accuracy" in record else ""))
    return records


def _teacher_test_logits(teacher: nn.Module | None, evaluation: dict[str, Split], ctx: Context,
                         cfg: StageConfig) -> torch.Tensor | None:  # fmt: skip
    """Teacher logits (N_test, C) on the test split, computed once per fit for the agreement metric."""
    if teacher is None or "test" not in evaluation:
        return None
    return predict_logits(teacher, evaluation["test"].images, ctx, cfg.eval_batch_size)


def _check_finite(loss: torch.Tensor, stage: str, epoch: int, step: int, ctx: Context) -> None:
    """Stop before a non-finite loss reaches the weights. On GPU only every 32nd step: a host sync per step
    costs throughput, and once the weights are NaN every later loss is too."""
    if (ctx.device.type == "cpu" or step % 32 == 0) and not torch.isfinite(loss.detach()).item():
        raise RuntimeFailure(f"{stage}: loss became {float(loss.detach())} in epoch {epoch + 1}, "
                             f"step {step + 1}; lower the lr (or check the data)")  # fmt: skip


def _epoch_record(stage, epoch, loss_sum, correct, seen, seconds, optimizer, model, evaluation, ctx, cfg,
                  known_logits: dict[str, torch.Tensor] | None = None) -> dict:  # fmt: skip
    """One line of metrics.jsonl; stops the run when the loss stopped being finite."""
    if ctx.world_size > 1:
        totals = torch.stack([loss_sum.float(), correct.float(), torch.tensor(float(seen), device=ctx.device)])
        torch.distributed.all_reduce(totals)
        loss_sum, correct, seen = totals[0], totals[1], int(totals[2])
    train_loss = float(loss_sum) / max(seen, 1)
    if not math.isfinite(train_loss):
        raise RuntimeFailure(f"{stage}: loss became {train_loss} in epoch {epoch + 1}; lower the lr "
                             "(the last good weights are those of the previous epoch)")  # fmt: skip
    record = {"stage": stage, "epoch": epoch + 1, "train_loss": train_loss,
              "train_accuracy": float(correct) / max(seen, 1), "lr": optimizer.param_groups[0]["lr"],
              "epoch_seconds": round(seconds, 3)}  # fmt: skip
    for name, split in evaluation.items():
        report = evaluate(model, split, ctx, cfg.eval_batch_size, (known_logits or {}).get(name))
        record.update({f"{name}_loss": report["loss"], f"{name}_accuracy": report["accuracy"],
                       f"{name}_errors": report["errors"]})  # fmt: skip
    return record


def _class_weights(labels: torch.Tensor, ctx: Context, cfg: StageConfig) -> torch.Tensor | None:
    """Inverse-frequency weights (C,) for imbalanced data (APTOS), mean 1; None unless the recipe asks."""
    if not cfg.class_weighted_loss:
        return None
    counts = torch.bincount(labels, minlength=ctx.num_classes).float().clamp(min=1)
    weights = counts.sum() / (len(counts) * counts)
    return weights / weights.mean()


def _progress_task(ctx: Context, description: str, total: int):
    return ctx.progress.add_task(description, total=total) if ctx.progress is not None and ctx.rank == 0 else None


def _advance(ctx: Context, task) -> None:
    if task is not None:
        ctx.progress.advance(task)


def _describe(ctx: Context, task, description: str) -> None:
    if task is not None:
        ctx.progress.update(task, description=description)
