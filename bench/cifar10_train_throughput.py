"""Training throughput of the CIFAR models on this machine against their FLOPs and the measured GEMM peak.

For each model and setting (memory layout, precision, batch size, threads) it times full SGD steps (forward,
backward, update, as kdedge's loop does them) and prints images/s, the FLOPs of one training step per image
(torch.utils.flop_counter: forward + backward), the achieved GFLOP/s (= images/s x GFLOP/image) and that
as a share of the machine's GEMM peak, measured beside it with `kdedge bench --peak`'s own code
(kdedge.bench.peak.measure_peak), in fp32 and in bf16. "before" is what a CPU run of the recipes did before
the CPU training speed-ups (fp32, NCHW, the recipe's batch 128, all threads); the best setting is the "after".

    .venv/bin/python bench/cifar10_train_throughput.py                       # ResNet18 + ResNet50, grid
    .venv/bin/python bench/cifar10_train_throughput.py --models cifar_resnet18 --batches 64 --steps 3 \
        --json bench/results/cifar10_throughput.json

On a shared machine the numbers scale with the load: the 1-minute load average is printed and saved.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from contextlib import nullcontext
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import torch
from torch.utils.flop_counter import FlopCounterMode

from kdedge.bench.peak import measure_peak
from kdedge.bench.results import machine_info
from kdedge.models.builders import build_model

DTYPES = ("float32", "bfloat16")
SETTINGS = {  # name -> (channels_last, bf16 autocast)
    "fp32 NCHW": (False, False),
    "fp32 channels_last": (True, False),
    "bf16 autocast NCHW": (False, True),
    "bf16 autocast channels_last": (True, True),
}


def _step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, images: torch.Tensor,
          labels: torch.Tensor, bf16: bool) -> None:  # fmt: skip
    """One SGD step on images (B, 3, 32, 32) float32, labels (B,) int64."""
    context = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext()
    with context:
        loss = torch.nn.functional.cross_entropy(model(images).float(), labels)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def train_flops_per_image(name: str, batch: int = 8) -> float:
    """FLOPs (2 per multiply-add) of forward + backward of `name` on one 32x32 image."""
    model = build_model(name, 10, 3, 32)
    images, labels = torch.randn(batch, 3, 32, 32), torch.randint(0, 10, (batch,))
    with FlopCounterMode(display=False) as counter:
        torch.nn.functional.cross_entropy(model(images), labels).backward()
    return counter.get_total_flops() / batch


def images_per_second(name: str, batch: int, channels_last: bool, bf16: bool, steps: int,
                      compiled: bool = False) -> float:  # fmt: skip
    """batch / median step time over `steps` timed steps (after 2 warm-up steps: oneDNN picks kernels)."""
    torch.manual_seed(0)
    model = build_model(name, 10, 3, 32)
    images, labels = torch.randn(batch, 3, 32, 32), torch.randint(0, 10, (batch,))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
    runner = torch.compile(model) if compiled else model
    timings = []
    for index in range(steps + 2):
        started = time.perf_counter()
        _step(runner, optimizer, images, labels, bf16)
        if index >= 2:
            timings.append(time.perf_counter() - started)
    return batch / sorted(timings)[len(timings) // 2]


def machine() -> dict:
    """CPU model and flags (kdedge bench's machine_info), torch version, date and load average now."""
    info = machine_info(SimpleNamespace(threads=torch.get_num_threads(), device="cpu"))
    return info | {"cpus": os.cpu_count(), "torch": torch.__version__,
                   "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                   "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                   "load_average_1min": round(os.getloadavg()[0], 2)}  # fmt: skip


def measure(args: argparse.Namespace) -> dict:
    """Peaks, then one row per (model, setting, batch, threads)."""
    payload = {"device": "cpu", "threads": torch.get_num_threads(), "seconds": 2.0}
    peaks = {dtype: measure_peak(payload | {"dtype": dtype})["peak_gflops"] for dtype in DTYPES}
    print(f"GEMM peak (2048^3 matmul): fp32 {peaks['float32']:.0f}, bf16 {peaks['bfloat16']:.0f} GFLOP/s")
    print(
        "| model | setting | batch | threads | images/s | train GFLOP/img | GFLOP/s | "
        "of fp32 peak | of own-dtype peak | load |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    rows = []
    for name in args.models:
        flops = train_flops_per_image(name)
        for threads in args.threads:
            torch.set_num_threads(threads)
            for setting in args.settings:
                channels_last, bf16 = SETTINGS[setting]
                for batch in args.batches:
                    rate = images_per_second(name, batch, channels_last, bf16, args.steps, args.compile)
                    peak = peaks["bfloat16" if bf16 else "float32"]
                    row = {"model": name, "setting": setting + (" compiled" if args.compile else ""),
                           "batch": batch, "threads": threads, "images_per_s": round(rate, 2),
                           "train_gflop_per_image": round(flops / 1e9, 3),
                           "achieved_gflops": round(rate * flops / 1e9, 1),
                           "fraction_of_fp32_peak": round(rate * flops / 1e9 / peaks["float32"], 3),
                           "fraction_of_own_dtype_peak": round(rate * flops / 1e9 / peak, 3),
                           "load_average_1min": round(os.getloadavg()[0], 2)}  # fmt: skip
                    rows.append(row)
                    print(_line(row), flush=True)
    return {"machine": machine(), "peak_gflops": peaks, "steps": args.steps, "rows": rows}


def _line(row: dict) -> str:
    return (f"| {row['model']} | {row['setting']} | {row['batch']} | {row['threads']} | "
            f"{row['images_per_s']:.1f} | {row['train_gflop_per_image']:.2f} | "
            f"{row['achieved_gflops']:.0f} | "
            f"{row['fraction_of_fp32_peak']:.2f} | {row['fraction_of_own_dtype_peak']:.2f} | "
            f"{row['load_average_1min']:.1f} |")  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["cifar_resnet18", "cifar_resnet50"])
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--batches", nargs="+", type=int, default=[32, 128])
    parser.add_argument("--threads", nargs="+", type=int, default=[torch.get_num_threads()])
    parser.add_argument("--steps", type=int, default=3, help="timed steps per row (median)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model (inductor)")
    parser.add_argument("--json", type=Path, help="also write the rows and the machine here")
    args = parser.parse_args(argv)
    info = machine()
    print(
        f"{info['cpu']}, {info['cpus']} CPUs, torch {info['torch']} ({info['cpu_capability']}), "
        f"{info['date']}, load average {info['load_average_1min']}"
    )
    result = measure(args)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
