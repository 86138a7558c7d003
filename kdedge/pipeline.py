"""What `kdedge train` / `kdedge distill` do: data -> teacher (trained or loaded) -> student -> run dir."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

import torch
from torch import nn

from kdedge.checkpoint import RunDir, build_stage_model, data_info, load_weights_into, weights_path
from kdedge.data import DataBundle, Split, filter_classes, load_data, split_validation
from kdedge.errors import InputError
from kdedge.models import count_params
from kdedge.recipe import Recipe, StageConfig
from kdedge.train import Context, evaluate, fit, resolve_device


def prepare_data(recipe: Recipe, data_root: str | None) -> DataBundle:
    """The recipe's data set with its validation split and optional size limits applied."""
    cfg = recipe.data
    bundle = split_validation(load_data(cfg.name, data_root, cfg.image_size), cfg.val_size, recipe.seed)

    def first(split: Split, limit: int | None) -> Split:
        if limit is None or limit >= len(split):
            return split
        order = torch.randperm(len(split), generator=torch.Generator().manual_seed(recipe.seed))
        return split.subset(order[:limit])

    return replace(bundle, train=first(bundle.train, cfg.train_limit), test=first(bundle.test, cfg.test_limit))


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


def make_context(recipe: Recipe, bundle: DataBundle, progress=None, on_epoch: Callable = lambda r: None) -> Context:
    device = resolve_device(recipe.device)
    return Context(device=device, mean=bundle.mean, std=bundle.std, seed=recipe.seed, amp=recipe.amp,
                   channels_last=recipe.channels_last and device.type == "cuda", num_classes=bundle.num_classes,
                   progress=progress, on_epoch=on_epoch)  # fmt: skip


def stage_summary(model: nn.Module, bundle: DataBundle, ctx: Context, cfg: StageConfig, extra: dict) -> dict:
    report = evaluate(model, bundle.test, ctx, cfg.eval_batch_size)
    summary = {"model": cfg.model, "params": count_params(model), "test_accuracy": report["accuracy"],
               "test_errors": report["errors"], "test_count": report["count"], "test_qwk": report["qwk"],
               "per_class_errors": report["per_class_errors"], **extra}  # fmt: skip
    if bundle.val is not None:
        summary["val_accuracy"] = evaluate(model, bundle.val, ctx, cfg.eval_batch_size)["accuracy"]
    return summary


def obtain_model(stage: str, recipe: Recipe, bundle: DataBundle, train: Split, ctx: Context, run: RunDir,
                 teacher: nn.Module | None = None) -> nn.Module:  # fmt: skip
    """Train one stage (or load it from `checkpoint`), save its weights and summary, return it in eval mode."""
    cfg: StageConfig = getattr(recipe, stage)
    torch.manual_seed(recipe.seed)  # the same init whether or not an earlier stage ran
    model = build_stage_model(cfg, data_info(bundle)).to(ctx.device)
    if ctx.channels_last:
        model = model.to(memory_format=torch.channels_last)
    started = time.perf_counter()
    if cfg.checkpoint:
        load_weights_into(model, weights_path(cfg.checkpoint, stage), stage)
        extra = {"source": str(weights_path(cfg.checkpoint, stage))}
    else:
        evaluation = {"test": bundle.test} | ({"val": bundle.val} if bundle.val is not None else {})
        records = fit(model, train, cfg, ctx, stage, evaluation, teacher=teacher, distill=recipe.distillation)
        extra = {"epochs": len(records), "train_accuracy": records[-1]["train_accuracy"]}
    extra["train_seconds"] = round(time.perf_counter() - started, 2)
    run.save_weights(stage, model, recipe)
    run.update_summary(stage, stage_summary(model, bundle, ctx, cfg, extra))
    return model.eval()


def run_recipe(recipe: Recipe, run: RunDir, data_root: str | None, stages: tuple[str, ...] = ("teacher", "student"),
               progress=None) -> dict:  # fmt: skip
    """Run the recipe's stages into `run`; returns summary.json's content."""
    bundle = prepare_data(recipe, data_root)
    ctx = make_context(recipe, bundle, progress, on_epoch=run.append_metrics)
    run.write_recipe(recipe)
    run.update_summary("data", data_info(bundle) | {"train_images": len(bundle.train), "test_images": len(bundle.test)})
    teacher = None
    if recipe.teacher is not None and "teacher" in stages:
        teacher = obtain_model("teacher", recipe, bundle, bundle.train, ctx, run)
    if recipe.student is not None and "student" in stages:
        if recipe.distillation.loss == "none":
            teacher = None  # the no-KD baseline: the student never sees the teacher
        obtain_model("student", recipe, bundle, student_train_split(recipe, bundle), ctx, run, teacher=teacher)
    run.update_summary("finished", True)
    return run.read_summary()
