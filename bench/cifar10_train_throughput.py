"""Training throughput on this CPU against the FLOPs and the GEMM peak: eager vs torch.compile, layouts, batch.

For ResNet18-CIFAR (recipe cifar10_resnet18: 32 px, batch 128) and the RetinaMNIST ConvNeXt-T (recipe
retina_convnext_teacher: 32 px, batch 32) it times full SGD steps (forward, backward, nesterov update, as
kdedge's loop does them) in each setting (bench/throughput_steps.py): eager NCHW, eager channels_last,
torch.compile (inductor, default mode; --max-autotune adds mode max-autotune-no-cudagraphs) with
channels_last, and eager channels_last at 4x the recipe's batch; in fp32 and, only where this CPU computes
bf16 natively (AMX / AVX512-BF16: kdedge.train.devices.cpu_native_bf16), bf16 autocast. The settings of
one model, precision and thread count run interleaved, one step each per round, so a ratio between them
(printed at the end) is measured under the same load. It reports images/s, the achieved GFLOP/s (FLOPs per
image from torch.utils.flop_counter, with a convolution backward that respects groups), that as a share of
the GEMM peak of the same precision (kdedge.bench.peak.measure_peak, same threads, probed before and after
each block, the higher), the compile time apart from the timing (the warm-up steps' extra seconds, from an
empty inductor cache), threads and load average.

    python bench/cifar10_train_throughput.py --threads 2 --json bench/results/train_throughput_compile.json
    python bench/cifar10_train_throughput.py --models cifar_resnet18 --threads 1 --steps 2 --json /tmp/t.json

Then `python bench/tables.py` makes its table (bench/tablegen/throughput.py).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's kdedge

from throughput_steps import (  # noqa: E402  (bench/ is on sys.path when run as a script)
    RECIPES,
    WARM_UP_STEPS,
    Setting,
    Workload,
    data_path_seconds,
    interleaved_seconds,
    make_step,
    median,
    op_breakdown,
    settings,
    train_flops_per_image,
    warm_up,
    workload,
)

from kdedge.bench.peak import measure_peak  # noqa: E402
from kdedge.bench.results import machine_info  # noqa: E402
from kdedge.train.devices import cpu_native_bf16  # noqa: E402

PEAK_DTYPES = {False: "float32", True: "bfloat16"}


def machine() -> dict:
    """CPU model and flags (kdedge bench's machine_info), native bf16, torch version, date, load average now."""
    info = machine_info(SimpleNamespace(threads=torch.get_num_threads(), device="cpu"))
    return info | {"cpus": os.cpu_count(), "torch": torch.__version__, "native_bf16": cpu_native_bf16(),
                   "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                   "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                   "load_average_1min": round(os.getloadavg()[0], 2)}  # fmt: skip


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def time_block(work: Workload, chosen: list[Setting], steps: int, flops: float, peak: float) -> list[dict]:
    """One row per setting, all timed interleaved: images/s (batch / median step), GFLOP/s, share of
    `peak` (GFLOP/s of the same precision), compile seconds (the warm-up steps beyond 2 timed steps)."""
    closures = [make_step(work, setting) for setting in chosen]
    warm = [warm_up(step) for step in closures]
    timings = interleaved_seconds(closures, steps)
    rows = []
    for setting, warm_seconds, seconds in zip(chosen, warm, timings, strict=True):
        step = median(seconds)
        rate = work.batch * setting.batch_factor / step
        rows.append({
            "model": work.model, "recipe": work.recipe, "setting": setting.label,
            "precision": "bf16" if setting.bf16 else "fp32", "channels_last": setting.channels_last,
            "compile_mode": setting.compile_mode, "batch": work.batch * setting.batch_factor,
            "threads": torch.get_num_threads(), "images_per_s": round(rate, 2),
            "train_gflop_per_image": round(flops / 1e9, 3), "achieved_gflops": round(rate * flops / 1e9, 1),
            "fraction_of_native_peak": round(rate * flops / 1e9 / peak, 3), "median_step_s": round(step, 4),
            "compile_s": None if setting.compile_mode is None else round(warm_seconds - WARM_UP_STEPS * step, 1),
            "warm_up_s": round(warm_seconds, 2), "load_average_1min": load_average(),
        })  # fmt: skip
    return rows


def ratios(rows: list[dict]) -> dict[str, float]:
    """Each technique's images/s over its baseline within one block (same model, precision, threads)."""
    base = next(r for r in rows if r["channels_last"] and r["compile_mode"] is None)
    nchw = next(r for r in rows if not r["channels_last"])
    found = {"channels_last / NCHW (eager)": base["images_per_s"] / nchw["images_per_s"]}
    for row in rows:
        if row["compile_mode"] is not None:
            found[f"compiled ({row['compile_mode']}) / eager (channels_last)"] = (
                row["images_per_s"] / base["images_per_s"]
            )
        elif row["batch"] != base["batch"]:
            found[f"batch {row['batch']} / {base['batch']} (eager channels_last)"] = (
                row["images_per_s"] / base["images_per_s"]
            )
    return {name: round(value, 3) for name, value in found.items()}


def peaks_at(threads: int, precisions: list[bool]) -> dict[str, float]:
    """The GEMM peak (GFLOP/s) of each precision at `threads`, measured now (best of kdedge.bench.peak's
    square sides)."""
    payload = {"device": "cpu", "threads": threads, "seconds": 3.0}
    return {
        PEAK_DTYPES[bf16]: measure_peak(payload | {"dtype": PEAK_DTYPES[bf16]})["peak_gflops"] for bf16 in precisions
    }


def time_against_peak(work: Workload, bf16: bool, args: argparse.Namespace, flops: float, threads: int) -> tuple:
    """One interleaved block and the GEMM peak of its precision, probed before AND after the block (the
    higher one: a probe that ran while the machine was busier under-reads the peak); shares re-based on it."""
    dtype = PEAK_DTYPES[bf16]
    before = peaks_at(threads, [bf16])[dtype]
    block = time_block(work, settings(bf16, args.max_autotune), args.steps, flops, before)
    peak = max(before, peaks_at(threads, [bf16])[dtype])
    if args.breakdown:  # where the eager channels_last step's time goes, per op group (torch.profiler)
        base = next(row for row in block if row["channels_last"] and row["compile_mode"] is None)
        step = make_step(work, Setting(True, bf16))
        warm_up(step)
        base["op_seconds_per_step"] = op_breakdown(step)
        print("  eager channels_last, seconds per step: "
              + ", ".join(f"{k} {v:.3f}" for k, v in base["op_seconds_per_step"].items()), flush=True)  # fmt: skip
    for row in block:
        row["fraction_of_native_peak"] = round(row["achieved_gflops"] / peak, 3)
        if row["fraction_of_native_peak"] > 1:  # impossible for a real count: say so rather than publish it
            print(f"  warning: {row['setting']} above the GEMM peak ({row['achieved_gflops']:.0f} > {peak:.0f} "
                  "GFLOP/s): the FLOP count or the peak probe is wrong", flush=True)  # fmt: skip
    return block, peak


def measure(args: argparse.Namespace) -> dict:
    """Per model and thread count: the peaks, then one interleaved block per precision."""
    precisions = [False, True] if cpu_native_bf16() else [False]
    rows, blocks = [], []
    for name in args.models:
        work = workload(name)
        flops = train_flops_per_image(work)
        for threads in args.threads:
            torch.set_num_threads(threads)
            data_path_ms = round(data_path_seconds(work) * 1000, 2)
            print(f"{name} ({work.recipe}), {threads} threads, {flops / 1e9:.2f} training GFLOP per image", flush=True)
            for bf16 in precisions:
                block, peak = time_against_peak(work, bf16, args, flops, threads)
                print(f"  GEMM peak {block[0]['precision']}: {peak:.0f} GFLOP/s", flush=True)
                for row in block:
                    print(_line(row), flush=True)
                rows += block
                blocks.append({"model": name, "threads": threads, "precision": block[0]["precision"],
                               "peak_gflops": round(peak, 1), "ratios": ratios(block),
                               "data_path_ms_per_batch": data_path_ms})  # fmt: skip
    return {"rows": rows, "blocks": blocks}


def _line(row: dict) -> str:
    compile_s = "" if row["compile_s"] is None else f", compile {row['compile_s']:.0f} s"
    return (f"  {row['setting']}, batch {row['batch']}: {row['images_per_s']:.1f} images/s, "
            f"{row['achieved_gflops']:.0f} GFLOP/s = {100 * row['fraction_of_native_peak']:.0f} % of the "
            f"{row['precision']} peak{compile_s} (load {row['load_average_1min']:.1f})")  # fmt: skip


def print_ratios(blocks: list[dict]) -> None:
    """The ratios of each block, one line per technique."""
    print("\nratios measured in this run (images/s over the baseline, same load):")
    for block in blocks:
        for name, value in block["ratios"].items():
            print(f"  {block['model']} {block['precision']} {block['threads']} threads: {name} {value:.2f}x")


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--threads", nargs="+", type=int, default=[torch.get_num_threads()])
    parser.add_argument("--steps", type=int, default=5, help="timed steps per setting (median), after 2 warm-up")
    parser.add_argument("--max-autotune", action="store_true", help="also mode=max-autotune-no-cudagraphs")
    parser.add_argument("--breakdown", action="store_true", help="profile the eager channels_last step per op group")
    parser.add_argument("--json", type=Path, help="write the rows, ratios and machine here")
    args = parser.parse_args(argv)
    if args.steps < 1 or min(args.threads) < 1:
        parser.error("--steps and --threads must be at least 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = arguments(argv)
    cache = tempfile.mkdtemp(prefix="inductor-")  # an empty inductor cache: the compile times are cold ones
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache
    torch._dynamo.config.recompile_limit = 64  # each setting compiles the same forward() (guards tell them apart)
    info, started = machine(), time.perf_counter()
    print(f"{info['cpu']}, {info['cpus']} CPUs, torch {info['torch']} ({info['cpu_capability']}), native bf16: "
          f"{info['native_bf16']}, {info['date']}, load average {info['load_average_1min']}")  # fmt: skip
    try:
        result = measure(args)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    print_ratios(result["blocks"])
    result = {"machine": info, "steps": args.steps, "warm_up_steps": WARM_UP_STEPS,
              "command": "python bench/cifar10_train_throughput.py " + " ".join(sys.argv[1:] if argv is None else argv),
              "seconds": round(time.perf_counter() - started), **result}  # fmt: skip
    print(f"whole run: {result['seconds']} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
