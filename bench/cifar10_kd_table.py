"""Teacher / self-KD / reverse-KD vs the same student without KD on CIFAR-10, mean of several seeds.

Runs the packaged recipes through the real CLI with --set overrides (so the numbers come from exactly what a
user runs), then prints one table: model, how it was trained, test accuracy per seed, mean and spread.

    KDEDGE_DATA=../shared/data .venv/bin/python bench/cifar10_kd_table.py --seeds 0 1 --epochs 2 \
        --epochs-r50 1 --batch-size 32 --lr 0.02 --train-limit 320 --train-limit-r50 160 --test-limit 200 \
        --val-size 0

Per seed: cifar10_self_r18 (its teacher IS the plain ResNet18 baseline: same seed, init, batch order and
augmentation, only the loss differs for the student), cifar10_reverse_r50_from_r18 reusing that teacher via
teacher.checkpoint, and cifar10_resnet50 (plain ResNet50 baseline).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

KDEDGE = [sys.executable, "-m", "kdedge"]


def run(recipe: str, out: Path, sets: list[str], train: bool = True) -> dict | None:
    """One `kdedge distill` run (skipped when out already holds a finished run); returns summary.json, or
    None when the run is not there and train is False (--table-only: report what finished)."""
    summary_file = out / "summary.json"
    finished = summary_file.exists() and json.loads(summary_file.read_text()).get("finished")
    if not finished and not train:
        return None
    if not finished:
        command = [*KDEDGE, "distill", recipe, "--out", str(out), "--force", "--quiet"]
        command += [arg for item in sets for arg in ("--set", item)]
        started = time.perf_counter()
        subprocess.run(command, check=True)
        print(f"{recipe} -> {out}: {time.perf_counter() - started:.0f} s", flush=True)
    return json.loads(summary_file.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--epochs", type=int, default=3, help="ResNet18 runs (teacher and self-KD student)")
    parser.add_argument("--epochs-r50", type=int, default=2, help="ResNet50 runs (reverse KD and no-KD)")
    parser.add_argument("--train-limit-r50", type=int, default=400, help="ResNet50 runs (R18's subset)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.02)
    parser.add_argument("--train-limit", type=int, default=600)
    parser.add_argument("--test-limit", type=int, default=300)
    parser.add_argument("--val-size", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/bench_cifar10_kd"))
    parser.add_argument("--table-only", action="store_true", help="train nothing; tabulate finished runs")
    args = parser.parse_args()
    common = [f"data.train_limit={args.train_limit}", f"data.test_limit={args.test_limit}",
              f"data.val_size={args.val_size}"]  # fmt: skip
    common50 = [*common, f"data.train_limit={args.train_limit_r50}"]  # later --set wins

    def stage(name: str, epochs: int) -> list[str]:
        return [f"{name}.epochs={epochs}", f"{name}.batch_size={args.batch_size}", f"{name}.lr={args.lr}"]

    rows: dict[str, list[float]] = {}
    seconds: dict[str, list[float]] = {}

    def add(label: str, summary: dict | None, stage_name: str) -> None:
        if summary is None:
            return
        rows.setdefault(label, []).append(100 * summary[stage_name]["test_accuracy"])
        per_epoch = summary[stage_name].get("train_seconds", 0) / summary[stage_name].get("epochs", 1)
        seconds.setdefault(label, []).append(per_epoch)

    for seed in args.seeds:
        base = args.out / f"seed{seed}"
        self_kd = run("cifar10_self_r18", base / "self_r18",
                      [f"seed={seed}", *common, *stage("teacher", args.epochs),
                       *stage("student", args.epochs)], not args.table_only)  # fmt: skip
        add("ResNet18, no KD (teacher)", self_kd, "teacher")
        add("ResNet18 <- ResNet18 (self-KD)", self_kd, "student")
        teacher_run = (base / "self_r18").resolve()
        reverse = run("cifar10_reverse_r50_from_r18", base / "reverse_r50",
                      [f"seed={seed}", *common50, *stage("student", args.epochs_r50),
                       f"teacher.checkpoint={teacher_run}"], not args.table_only)  # fmt: skip
        add("ResNet50 <- ResNet18 (reverse KD)", reverse, "student")
        plain50 = run("cifar10_resnet50", base / "resnet50",
                      [f"seed={seed}", *common50, *stage("teacher", args.epochs_r50)], not args.table_only)
        add("ResNet50, no KD", plain50, "teacher")
    print(f"\nCIFAR-10 subset: train {args.train_limit} (ResNet50: {args.train_limit_r50}), "
          f"val {args.val_size}, test {args.test_limit} images; {args.epochs} epochs (ResNet18) / "
          f"{args.epochs_r50} (ResNet50), batch {args.batch_size}, lr {args.lr}; "
          f"seeds {args.seeds}")  # fmt: skip
    print("| model (training) | seeds | test acc % per seed | mean | max-min | s/epoch (train+eval) |")
    print("| --- | ---: | --- | ---: | ---: | ---: |")
    for label, values in rows.items():
        spread = f"{max(values) - min(values):.1f}" if len(values) > 1 else "n/a"
        print(f"| {label} | {len(values)} | {' / '.join(f'{v:.1f}' for v in values)} | "
              f"{statistics.mean(values):.1f} | {spread} | "
              f"{statistics.mean(seconds[label]):.0f} |")  # fmt: skip


if __name__ == "__main__":
    main()
