"""Optimisers, learning-rate schedules and weight constraints of a training stage (StageConfig)."""

from __future__ import annotations

import math

import torch
from torch import nn

from kdedge.recipe import StageConfig


def make_optimizer(model: nn.Module, cfg: StageConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "sgd":
        nesterov = cfg.nesterov and cfg.momentum > 0
        momentum = momentum_at(cfg, 0, 1)
        return torch.optim.SGD(
            params,
            lr=cfg.lr,
            momentum=momentum,
            dampening=momentum if cfg.dampening else 0.0,
            nesterov=nesterov,
            weight_decay=cfg.weight_decay,
        )
    optimizer_cls = torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.AdamW
    return optimizer_cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def set_step_hyperparameters(
    optimizer: torch.optim.Optimizer, cfg: StageConfig, step: int, steps_per_epoch: int
) -> None:
    """The lr (warm-up, schedule) and, for a ramped sgd momentum, the momentum of optimiser step `step`."""
    lr = cfg.lr * lr_factor(cfg, step, steps_per_epoch)
    momentum = momentum_at(cfg, step, steps_per_epoch) if cfg.momentum_start is not None else None
    for group in optimizer.param_groups:
        group["lr"] = lr
        if momentum is not None:
            group["momentum"] = momentum
            group["dampening"] = momentum if cfg.dampening else 0.0


def momentum_at(cfg: StageConfig, step: int, steps_per_epoch: int) -> float:
    """SGD momentum at optimiser step `step`: linear from momentum_start to momentum over the first
    momentum_ramp_epochs, then momentum (momentum throughout without a ramp)."""
    if cfg.momentum_start is None or cfg.momentum_ramp_epochs is None:
        return cfg.momentum
    progress = min(1.0, step / (cfg.momentum_ramp_epochs * steps_per_epoch))
    return cfg.momentum_start + (cfg.momentum - cfg.momentum_start) * progress


def lr_factor(cfg: StageConfig, step: int, steps_per_epoch: int) -> float:
    """Multiplier of the base lr at optimiser step `step` (warm-up, then the recipe's schedule)."""
    epoch = step / steps_per_epoch
    warmup = warmup_length(cfg)
    if warmup and epoch < warmup:
        return min(1.0, (step + 1) / (warmup * steps_per_epoch))
    progress = (epoch - warmup) / max(cfg.epochs - warmup, 1e-9)
    if cfg.schedule == "cosine" and cfg.cosine_cycles:
        return _cosine_cycle_factor(cfg.cosine_cycles, cfg.cycle_decay, progress)
    if cfg.schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
    if cfg.schedule == "step":
        return cfg.step_gamma ** int(epoch // cfg.step_epochs)
    if cfg.schedule == "onecycle":  # linear up for 25%, linear down to 0
        return min(progress / 0.25, (1 - progress) / 0.75) if progress < 1 else 0.0
    return 1.0


def warmup_length(cfg: StageConfig) -> float:
    """Epochs of linear warm-up: the recipe's warmup_epochs, at most a quarter of the run."""
    return min(cfg.warmup_epochs, cfg.epochs / 4)


def _cosine_cycle_factor(cycles: list[float], decay: float, progress: float) -> float:
    """Cosine with warm restarts at `progress` (0..1 of the epochs after warm-up): cycle i takes the share
    cycles[i] / sum(cycles) and falls from decay**i to 0; after the last, 0."""
    position, start = progress * sum(cycles), 0.0
    for index, length in enumerate(cycles):
        if position < start + length:
            return decay**index * 0.5 * (1 + math.cos(math.pi * (position - start) / length))
        start += length
    return 0.0


def apply_max_norm(model: nn.Module, max_norm: float) -> None:
    """Hinton et al.'s constraint: rescale each unit's incoming weight vector to L2 norm <= max_norm."""
    with torch.no_grad():
        for layer in model.modules():
            if isinstance(layer, nn.Linear):
                layer.weight.renorm_(p=2, dim=0, maxnorm=max_norm)  # in place: 2-3x faster than copy_(renorm)


def optimizer_step(
    loss: torch.Tensor,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    cfg: StageConfig,
) -> None:
    """Backward (loss-scaled for fp16), optional gradient clipping, the update, then the max-norm
    constraint."""
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if cfg.clip_grad_norm:  # on the true gradients, not the fp16-scaled ones
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad_norm)
    scaler.step(optimizer)
    scaler.update()
    if cfg.max_norm:
        apply_max_norm(model, cfg.max_norm)
