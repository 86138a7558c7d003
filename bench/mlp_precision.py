"""What makes a long schedule of Hinton's MLP teacher affordable on this CPU? One full training step of
hinton_mnist_800's teacher (784-1200-1200-10, dropout) as kdedge's loop does it: the recipe's augmentation and
normalisation, forward, backward, SGD with momentum, the max-norm constraint. At the recipe's batch and at 4x
and 16x it, in fp32 and under bf16 autocast, and at the recipe's batch with fast_dropout (BitDropout's
masks instead of nn.Dropout's), the settings interleaved (one step of each per round, so every
setting sees the same load), one thread; seconds per epoch of 60,000 images and the ratio against fp32 at
the recipe's batch, measured in one run. A large batch changes the optimisation too: the ratio is only what
it would save, not a recipe.

    .venv/bin/python bench/mlp_precision.py   # -> bench/results/mnist_teacher_precision.json

Run it on a quiet machine (the load average goes into the file).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from datetime import date
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's kdedge
from speed_common import RESULTS, load, machine, print_rows  # noqa: E402  (bench/ is on sys.path)
from throughput_steps import interleaved_seconds, median  # noqa: E402

from kdedge.data.types import normalize  # noqa: E402
from kdedge.models.builders import build_model  # noqa: E402
from kdedge.recipe.load import load_recipe  # noqa: E402
from kdedge.train.augment import augment  # noqa: E402
from kdedge.train.devices import cpu_native_bf16  # noqa: E402
from kdedge.train.optim import make_optimizer, optimizer_step  # noqa: E402

RECIPE = "hinton_mnist_800"
EPOCH_IMAGES = 60_000
BATCH_FACTORS = (1, 4, 16)
WARM_UP_STEPS = 5  # untimed: oneDNN picks its kernels per shape and precision
COLUMNS = ["precision", "batch", "dropout masks", "ms per step", "s per epoch", "vs fp32 at the recipe's batch"]
Setting = tuple[str, int, str]  # (precision 'fp32' | 'bf16', batch, dropout masks 'torch' | 'bits')


def make_step(setting: Setting) -> Callable[[], None]:
    """A closure doing one training step of the recipe's teacher (freshly built, seeded) on a random uint8 batch
    (1, 28, 28): augmentation and normalisation included, as in kdedge's loop."""
    precision, batch, masks = setting
    stage = load_recipe(RECIPE).teacher
    torch.manual_seed(0)
    model = build_model(stage.model, 10, 1, 28, stage.model_kwargs | {"fast_dropout": masks == "bits"}).train()
    optimizer = make_optimizer(model, stage)
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (batch, 1, 28, 28), dtype=torch.uint8)
    labels = torch.randint(0, 10, (batch,))
    scaler = torch.amp.GradScaler("cpu", enabled=False)  # loss scaling is for fp16 on CUDA only

    def step() -> None:
        inputs = normalize(augment(images, stage.augment, generator), (0.1307,), (0.3081,))
        with torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else nullcontext():
            loss = torch.nn.functional.cross_entropy(model(inputs).float(), labels)
        optimizer_step(loss, model, optimizer, scaler, stage)  # the loop's update: backward, step, max-norm

    return step


def settings(factors: list[int]) -> list[Setting]:
    """fp32 and bf16 at the recipe's batch x each factor with torch's dropout masks, then both at the
    recipe's batch with BitDropout's (the mlp's fast_dropout)."""
    batch = load_recipe(RECIPE).teacher.batch_size
    chosen = [(p, batch * f, "torch") for f in factors for p in ("fp32", "bf16")]
    return chosen + [(p, batch, "bits") for p in ("fp32", "bf16")]


def measure(seconds: float, factors: list[int]) -> tuple[list[list], dict[Setting, float]]:
    """Table rows and the seconds per epoch of each setting (settings(factors)), timed interleaved."""
    chosen = settings(factors)
    steps = [make_step(setting) for setting in chosen]
    for step in steps:
        for _ in range(WARM_UP_STEPS):
            step()
    rounds = max(5, int(seconds / sum(_once(step) for step in steps)))
    timings = interleaved_seconds(steps, rounds)
    per_epoch = {s: median(t) * EPOCH_IMAGES / s[1] for s, t in zip(chosen, timings, strict=True)}
    base = per_epoch[chosen[0]]
    rows = [[*s, round(1000 * median(t), 2), round(per_epoch[s], 2), f"{base / per_epoch[s]:.2f}x"]
            for s, t in zip(chosen, timings, strict=True)]  # fmt: skip
    return rows, per_epoch


def _once(step: Callable[[], None]) -> float:
    started = time.perf_counter()
    step()
    return time.perf_counter() - started


def table_file(rows: list[list], per_epoch: dict[Setting, float], loads: tuple[float, float]) -> dict:
    """The results table (kdedge.report.results_page's keys) of one measurement."""
    batch = load_recipe(RECIPE).teacher.batch_size
    base = per_epoch[("fp32", batch, "torch")]

    def gain(setting: Setting) -> str:
        return f"{base / per_epoch[setting]:.2f}x"

    return {
        "date": date.today().isoformat(),
        "title": "Hinton's MLP teacher: a training step by precision, batch and dropout masks (CPU, one thread)",
        "experiment": "bench/mlp_precision.py",
        "order": 68,
        "headline": f"Hinton teacher step on one CPU thread, against fp32 at the recipe's batch {batch}: bf16 "
        f"autocast {gain(('bf16', batch, 'torch'))}, fast_dropout {gain(('fp32', batch, 'bits'))}, both "
        f"{gain(('bf16', batch, 'bits'))}",
        "machine": f"{machine()}, torch {torch.__version__}, native bf16: {cpu_native_bf16()}, one thread "
        f"(OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}), load average {loads[0]:.2f} before, "
        f"{loads[1]:.2f} after",
        "commands": ["python bench/mlp_precision.py"],
        "source": "bench/mlp_precision.py (its stdout), docs/experiments.md section 2",
        "columns": COLUMNS,
        "rows": rows,
        "notes": [
            f"one full step of {RECIPE}'s teacher (affine augmentation, normalisation, dropout forward, backward, SGD "
            f"momentum 0.9, max-norm 3.5) on random uint8 images; the median of each setting's steps after "
            f"{WARM_UP_STEPS} warm-up steps, the settings interleaved; s per epoch = that x {EPOCH_IMAGES:,} / batch "
            "(the loop's test-set scoring after each epoch is not included)",
            "a larger batch also changes the optimisation (fewer, larger steps per epoch): its rows say what it "
            "would save, not that the recipe should use it",
            "dropout masks: torch = nn.Dropout (one Bernoulli draw per element), bits = the mlp's fast_dropout "
            "(kdedge.models.dropout.BitDropout: three 16-bit levels per 63-bit random word)",
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="about how long the timed rounds take")
    parser.add_argument("--factors", type=int, nargs="+", default=list(BATCH_FACTORS), help="batch multiples")
    parser.add_argument("--out", type=Path, default=RESULTS / "mnist_teacher_precision.json", help="the table file")
    args = parser.parse_args()
    if 1 not in args.factors:
        raise SystemExit("error: --factors must include 1 (the recipe's batch, which the ratios are against)")
    torch.set_num_threads(1)
    if not cpu_native_bf16():
        print("note: this CPU has no native bf16 (AMX / AVX512-BF16): bf16 autocast is emulated here")
    before = load()
    rows, per_epoch = measure(args.seconds, args.factors)
    print_rows(COLUMNS, rows)
    partial = args.out.with_name(args.out.name + ".partial")  # then renamed: a failed write keeps the old file
    partial.write_text(json.dumps(table_file(rows, per_epoch, (before, load())), indent=2) + "\n")
    partial.replace(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
