"""Scoring a model: logits in eval mode, a split's report, the splits scored after every epoch, and a
stage's summary.json entry. Nothing here trains or writes files."""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from kdedge.data.types import DataBundle, Split, normalize
from kdedge.models.builders import count_params
from kdedge.recipe import StageConfig
from kdedge.runtime.metrics import agreement, classification_report
from kdedge.train.context import Context
from kdedge.train.devices import autocast


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


def teacher_test_logits(teacher: nn.Module | None, ctx: Context, batch_size: int) -> torch.Tensor | None:
    """Teacher logits (N_test, C) on the test split, computed once per fit for the agreement metric; None
    without a teacher or a test split."""
    if teacher is None or "test" not in ctx.evaluation:
        return None
    return predict_logits(teacher, ctx.evaluation["test"].images, ctx, batch_size)


def score_splits(
    model: nn.Module, ctx: Context, batch_size: int, teacher_test_logits: torch.Tensor | None = None
) -> dict:
    """The end-of-epoch scores of every split in ctx.evaluation: {'<split>_loss', '<split>_accuracy',
    '<split>_errors'}, and with the teacher's test logits (N_test, C) 'test_agreement': how often the
    student now picks the teacher's class."""
    scores, known = {}, {}  # the student's test logits serve both the test metrics and the agreement: one pass
    if teacher_test_logits is not None:
        known["test"] = predict_logits(model, ctx.evaluation["test"].images, ctx, batch_size)
        scores["test_agreement"] = agreement(known["test"], teacher_test_logits)
    for name, split in ctx.evaluation.items():
        report = evaluate(model, split, ctx, batch_size, known.get(name))
        scores |= {f"{name}_loss": report["loss"], f"{name}_accuracy": report["accuracy"]}
        scores[f"{name}_errors"] = report["errors"]
    return scores


def stage_summary(model: nn.Module, bundle: DataBundle, ctx: Context, cfg: StageConfig, extra: dict) -> dict:
    """The stage's summary.json entry, scored in fp32 (the precision `kdedge export` ships) even when it
    trained under autocast, so the numbers equal an onnxruntime fp32 evaluation of the exported model."""
    ctx = replace(ctx, amp="off")
    report = evaluate(model, bundle.test, ctx, cfg.eval_batch_size)
    summary = {
        "model": cfg.model,
        "params": count_params(model),
        "test_accuracy": report["accuracy"],
        "test_errors": report["errors"],
        "test_count": report["count"],
        "test_qwk": report["qwk"],
        "per_class_errors": report["per_class_errors"],
        **extra,
    }
    if bundle.val is not None:
        val_report = evaluate(model, bundle.val, ctx, cfg.eval_batch_size)
        summary["val_accuracy"], summary["val_qwk"] = val_report["accuracy"], val_report["qwk"]
    summary["test_confusion"] = report["confusion"]  # (C, C) rows = true class; for plots and `kdedge report`
    return summary
