"""Teacher logits computed once and kept: in memory for one fit, in a file for the next (sweep points,
resumed runs). A file is only ever reused under the same key: the sha256 of the teacher's weights, the
training images and the transform that feeds the teacher (teacher_logits_key builds it).

When the student sees the same input the teacher would (no augmentation), the teacher's logits over the
training set are computed once (in eval / inference mode; for jittered input, once per each of the 25
shifts) and indexed per batch instead of re-running the teacher every step."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from torch import nn

from kdedge.data.types import Split
from kdedge.files.atomic import save_state
from kdedge.files.integrity import CorruptFile, read_verified
from kdedge.recipe import DistillConfig, StageConfig
from kdedge.train.augment import JITTER_VARIANTS, jitter_variant
from kdedge.train.context import Context
from kdedge.train.evaluation import predict_logits
from kdedge.ui.console import warn

KEY_FIELD = "kdedge.teacher_logits_key"


def teacher_logits_for(
    teacher: nn.Module | None, split: Split, cfg: StageConfig, distill: DistillConfig, ctx: Context
) -> torch.Tensor | None:
    """The cache: teacher logits float32 over the whole training split, (N, C) for unaugmented student input
    or (JITTER_VARIANTS, N, C) for jittered input (the teacher's logits for each of the 25 shifts); None
    when they must be computed per batch (random crops / affine warps, caching turned off, or a feature method,
    distillation.feature_loss, which needs the teacher's layers each step).

    With ctx.teacher_logits_file, logits saved there by an earlier fit are reused when their key
    (teacher_logits_key: teacher weights + data + transform) matches; otherwise computed and saved."""
    if teacher is None or cfg.augment not in ("none", "jitter") or not distill.cache_teacher_logits:
        return None
    if distill.feature_loss is not None:  # a feature method runs the teacher live: its layers' outputs are needed
        return None

    def compute() -> torch.Tensor:
        if cfg.augment == "none":
            return predict_logits(teacher, split.images, ctx, cfg.eval_batch_size)
        # 25 teacher passes over the data, once; a live teacher costs one pass per student epoch
        shifted = (jitter_variant(split.images, variant) for variant in range(JITTER_VARIANTS))
        return torch.stack([predict_logits(teacher, images, ctx, cfg.eval_batch_size) for images in shifted])

    key = teacher_logits_key(teacher, split, cfg, ctx)
    return load_or_compute(ctx.teacher_logits_file, key, compute, ctx.rank == 0, ctx.device)


def teacher_logits_key(teacher: nn.Module, split: Split, cfg: StageConfig, ctx: Context) -> str:
    """sha256 (first 16 hex digits) of everything cached teacher logits depend on: the teacher's
    architecture and weights, the training images (bytes, shape, order) and the transform that feeds
    the teacher (normalisation, augmentation, mixed precision, memory layout, device type)."""
    transform = [list(ctx.mean), list(ctx.std), cfg.augment, ctx.amp, ctx.channels_last, ctx.device.type]
    return digest_key(teacher, split.images, json.dumps(transform))


def digest_key(teacher: torch.nn.Module, images: torch.Tensor, transform: str) -> str:
    """sha256 (first 16 hex digits) of the teacher's architecture and weights, the images (bytes, shape,
    order) and `transform` (a JSON string describing what happens to an image before the teacher sees it)."""
    digest = hashlib.sha256(repr(teacher).encode())
    for name, tensor in teacher.state_dict().items():
        digest.update(f"{name}{tuple(tensor.shape)}{tensor.dtype}".encode())
        digest.update(_raw_bytes(tensor))
    digest.update(f"{tuple(images.shape)}{images.dtype}".encode())
    digest.update(_raw_bytes(images))
    digest.update(transform.encode())
    return digest.hexdigest()[:16]


def load_or_compute(
    path: Path | None, key: str, compute: Callable[[], torch.Tensor], writer: bool, device: torch.device
) -> torch.Tensor:
    """Logits saved at `path` under `key`, else compute() (saved there when `writer`: one rank under DDP).
    Shapes are whatever compute() returns: (N, C), or (V, N, C) with one row per augmentation variant."""
    if path is None:
        return compute()
    logits = _read(path, key)
    if logits is not None:
        return logits.to(device)
    logits = compute()
    if writer:
        save_state(path, {"logits": logits}, {KEY_FIELD: key})
    return logits


def _raw_bytes(tensor: torch.Tensor) -> memoryview:
    """The tensor's bytes (any dtype, bf16 included) without a copy when it is already on the CPU."""
    return memoryview(tensor.detach().reshape(-1).contiguous().cpu().view(torch.uint8).numpy())


def _read(path: Path, key: str) -> torch.Tensor | None:
    """Logits saved under `key`, or None (no file, another key, unreadable: recompute, it is only a cache).
    A file that fails its checksum or does not parse is never used; that is said once, on stderr."""
    if not path.exists():
        return None
    try:
        with safe_open(str(path), framework="pt") as handle:
            if (handle.metadata() or {}).get(KEY_FIELD) != key:
                return None
        return read_verified(path)[0]["logits"]
    except (SafetensorError, OSError, CorruptFile, KeyError) as err:
        why = "checksum mismatch" if isinstance(err, CorruptFile) else f"unreadable: {type(err).__name__}"
        warn(f"teacher logits cache {path} is corrupt ({why}); not used, recomputing it")
        return None
