"""THE training loop, for teachers and students alike. Read `fit` top to bottom.

Data is resident on the training device as uint8 tensors; each step indexes a batch, augments it on
the device, normalises it and takes one optimiser step. When the student sees the same input the
teacher would (no augmentation), the teacher's logits over the training set are computed once
(in eval/inference mode) and indexed per batch instead of re-running the teacher every step.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from kdedge.data import Split, augment, normalize
from kdedge.errors import InputError, RuntimeFailure
from kdedge.losses import LOSSES
from kdedge.metrics import classification_report
from kdedge.recipe import DistillConfig, StageConfig


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
    progress: object | None = None  # rich.progress.Progress, or None for silence
    notes: list[str] = field(default_factory=list)


def resolve_device(name: str) -> torch.device:
    """'auto' -> CUDA when present else CPU; an explicit 'cuda' without a GPU is bad input."""
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("device: 'cuda' requested but no CUDA device is present (use device=auto or cpu)")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


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


def evaluate(model: nn.Module, split: Split, ctx: Context, batch_size: int = 1024) -> dict:
    """accuracy / errors / per-class errors / qwk / mean CE loss of `model` on a split."""
    logits = predict_logits(model, split.images, ctx, batch_size)
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
    """The cache: teacher logits (N, C) over the whole training split, or None when they must be
    computed per batch (augmented student input, or caching turned off)."""
    if teacher is None or cfg.augment != "none" or not distill.cache_teacher_logits:
        return None
    return predict_logits(teacher, split.images, ctx, cfg.eval_batch_size)


def fit(model: nn.Module, train: Split, cfg: StageConfig, ctx: Context, stage: str,
        evaluation: dict[str, Split], teacher: nn.Module | None = None, distill: DistillConfig | None = None,
        start_epoch: int = 0, optimizer: torch.optim.Optimizer | None = None,
        generator: torch.Generator | None = None) -> list[dict]:  # fmt: skip
    """Train `model` in place for cfg.epochs on `train`; return one metrics record per epoch.

    With a teacher, the loss is the recipe's distillation loss on (student, teacher) logits; without,
    plain cross-entropy. `evaluation` maps split names ('val', 'test') to the splits scored each epoch.
    Under DDP (ctx.world_size > 1) every rank walks its own shard of the same shuffled order.
    """
    distill = distill if teacher is not None else DistillConfig(loss="none")
    loss_fn = LOSSES.get(distill.loss)
    alpha, temperature = distill.soft_weight, distill.temperature
    optimizer = optimizer or make_optimizer(model, cfg)
    generator = generator or torch.Generator().manual_seed(ctx.seed)
    images, labels = train.images.to(ctx.device), train.labels.to(ctx.device)
    cached_teacher_logits = teacher_logits_for(teacher, train, cfg, distill, ctx)
    class_weights = _class_weights(labels, ctx, cfg)
    steps_per_epoch = math.ceil(len(labels) / (cfg.batch_size * ctx.world_size))
    records = []
    task = _progress_task(ctx, stage, steps_per_epoch * (cfg.epochs - start_epoch))
    for epoch in range(start_epoch, cfg.epochs):
        started = time.perf_counter()
        model.train()
        order = torch.randperm(len(labels), generator=generator)[ctx.rank :: ctx.world_size].to(ctx.device)
        loss_sum = torch.zeros((), device=ctx.device)  # summed on device: no .item() sync per step
        correct = torch.zeros((), device=ctx.device, dtype=torch.long)
        for step, batch in enumerate(order.split(cfg.batch_size)):
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
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if cfg.max_norm:
                apply_max_norm(model, cfg.max_norm)
            loss_sum += loss.detach() * len(batch)
            correct += (student_logits.detach().argmax(1) == labels[batch]).sum()
            _advance(ctx, task)
        record = _epoch_record(stage, epoch, loss_sum, correct, len(order), time.perf_counter() - started,
                               optimizer, model, evaluation, ctx, cfg)  # fmt: skip
        records.append(record)
        ctx.on_epoch(record)
        _describe(ctx, task, f"{stage} epoch {epoch + 1}/{cfg.epochs} loss {record['train_loss']:.4f}"
                  + (f" test acc {record['test_accuracy']:.4f}" if "test_accuracy" in record else ""))
    return records


def _epoch_record(stage, epoch, loss_sum, correct, seen, seconds, optimizer, model, evaluation, ctx, cfg) -> dict:
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
        report = evaluate(model, split, ctx, cfg.eval_batch_size)
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
