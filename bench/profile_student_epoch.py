"""Where one kdedge student epoch spends its time: torch.profiler over kdedge.train.loop.fit (1 epoch) on
the bench's job (hinton_mnist_800 student 784-800-800-10, T=20, full MNIST, cached teacher logits).

    KDEDGE_DATA=/work/shared/data .venv/bin/python bench/profile_student_epoch.py \\
        --teacher runs/bench_train_speed/teacher-e2-s0-cpu/teacher.safetensors [--threads 1]

Prints the phases (teacher-logit cache, training steps, per-epoch test evaluation) and the top operators by
self CPU time, as markdown for docs/archive/results-log.md. The teacher comes from bench/train_speed.py's work folder.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kdedge.data.load import load_data  # noqa: E402
from kdedge.models.builders import build_model  # noqa: E402 - after the sys.path line
from kdedge.models.weights import load_weights_into  # noqa: E402
from kdedge.recipe import load_recipe  # noqa: E402
from kdedge.train.loop import Context, fit  # noqa: E402
from kdedge.train.teacher_cache import teacher_logits_for  # noqa: E402


def setup(teacher_path: Path):
    overrides = {"student.epochs": 1, "distillation.loss": "kl", "device": "cpu"}
    recipe = load_recipe("hinton_mnist_800", overrides)
    bundle = load_data("mnist", os.environ["KDEDGE_DATA"])
    ctx = Context(device=torch.device("cpu"), mean=bundle.mean, std=bundle.std, num_classes=10)
    teacher = build_model("mlp", 10, 1, 28, recipe.teacher.model_kwargs)
    load_weights_into(teacher, teacher_path, "teacher")
    torch.manual_seed(recipe.seed)
    student = build_model("mlp", 10, 1, 28, recipe.student.model_kwargs)
    return recipe, bundle, ctx, teacher.eval(), student


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", type=Path, required=True, help="teacher.safetensors (784-1200-1200-10)")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's own)")
    parser.add_argument("--rows", type=int, default=15)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    recipe, bundle, ctx, teacher, student = setup(args.teacher)
    importlib.import_module("torch._dynamo")  # the first optimiser imports it (seconds); not part of an epoch

    started = time.perf_counter()
    teacher_logits_for(teacher, bundle.train, recipe.student, recipe.distillation, ctx)
    cache_seconds = time.perf_counter() - started
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        started = time.perf_counter()
        record = fit(
            student,
            bundle.train,
            recipe.student,
            replace(ctx, evaluation={"test": bundle.test}),
            teacher=teacher,
            distill=recipe.distillation,
        )[-1]
        total = time.perf_counter() - started
    rest = total - record["epoch_seconds"]
    print(
        f"threads {torch.get_num_threads()}; fit (1 epoch, profiled) {total:.2f} s = training steps "
        f"{record['epoch_seconds']:.2f} s + teacher-logit cache and test evaluation {rest:.2f} s; "
        f"teacher-logit cache alone (unprofiled) {cache_seconds:.2f} s; "
        f"test acc {record['test_accuracy']:.4f}\n"
    )
    averages = prof.key_averages()
    print(averages.table(sort_by="self_cpu_time_total", row_limit=args.rows, max_name_column_width=40))


if __name__ == "__main__":
    main()
