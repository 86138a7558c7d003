"""Teacher / self-KD / reverse-KD vs the same student without KD on CIFAR-10, mean of several seeds.

Runs the packaged recipes through the real CLI with --set overrides (so the numbers come from exactly what a
user runs), then prints one table: model, how it was trained, epochs and images, test accuracy per seed,
mean and spread; --json writes it too.

    # the full-data table on one CUDA GPU (recipes as shipped: 200 epochs, 49,500 + 500 val / 10,000 test)
    python bench/cifar10_kd_table.py --full --out runs/cifar10_full
    # the same on 8 GPUs of one machine (torchrun; per-process batch 128, so the global batch is 1,024)
    python bench/cifar10_kd_table.py --full --nproc 8 --out runs/cifar10_full
    # expected time per row (FLOPs x images / an assumed GPU throughput), no training
    python bench/cifar10_kd_table.py --full --estimate
    # the CPU protocol (fp32 -> bf16 + channels_last) on the 4,000-image subset (ResNet18 only)
    KDEDGE_DATA=../shared/data python bench/cifar10_kd_table.py --seeds 0 1 --epochs 3 --train-limit 1000 \
        --no-r50 --json bench/results/cifar10_resnet_subset.json

Per seed: cifar10_self_r18 (its teacher IS the plain ResNet18 baseline: same seed, init, batch order and
augmentation, only the loss differs for the student), cifar10_reverse_r50_from_r18 reusing that teacher via
teacher.checkpoint, cifar10_resnet50 (plain ResNet50 baseline) and cifar10_self_r50 reusing it as teacher.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

# (row label, recipe, run folder, stage read from its summary.json, ResNet50 row?)
ROWS = (
    ("ResNet18, no KD (= the self-KD teacher)", "cifar10_self_r18", "self_r18", "teacher", False),
    ("ResNet18 <- ResNet18 (self-KD, KL, alpha 0.5, T 11)", "cifar10_self_r18", "self_r18", "student", False),
    ("ResNet50, no KD (= the self-KD teacher)", "cifar10_self_r50", "self_r50", "teacher", True),
    ("ResNet50 <- ResNet50 (self-KD, KL, alpha 0.5, T 11)", "cifar10_self_r50", "self_r50", "student", True),
    (
        "ResNet50 <- ResNet18 (reverse KD, KL, alpha 0.5, T 11)",
        "cifar10_reverse_r50_from_r18",
        "reverse_r50",
        "student",
        True,
    ),
)
# training FLOPs per 32x32 image (forward + backward, torch.utils.flop_counter, as counted by
# bench/cifar10_train_throughput.py) and one teacher forward for a KD student: used by --estimate only
TRAIN_GFLOP = {"cifar_resnet18": 3.33, "cifar_resnet50": 7.8}
FORWARD_GFLOP = {"cifar_resnet18": 1.11, "cifar_resnet50": 2.6}


def kdedge_command(nproc: int) -> list[str]:
    if nproc > 1:
        return [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={nproc}",
            "-m",
            "kdedge",
        ]
    return [sys.executable, "-m", "kdedge"]


def run(recipe: str, out: Path, sets: list[str], train: bool, nproc: int = 1) -> dict | None:
    """One `kdedge distill` run (skipped when out already holds a finished run); returns summary.json, or
    None when the run is not there and train is False (--table-only: report what finished)."""
    summary_file = out / "summary.json"
    finished = summary_file.exists() and json.loads(summary_file.read_text()).get("finished")
    if not finished and not train:
        return None
    if not finished:
        command = [*kdedge_command(nproc), "distill", recipe, "--out", str(out), "--force", "--quiet"]
        command += [arg for item in sets for arg in ("--set", item)]
        started = time.perf_counter()
        subprocess.run(command, check=True)
        print(f"{recipe} -> {out}: {time.perf_counter() - started:.0f} s", flush=True)
    return json.loads(summary_file.read_text())


def overrides(args: argparse.Namespace, seed: int, r50: bool) -> list[str]:
    """--set values of one run: the seed, and on the subset the limits and the shortened schedule."""
    sets = [f"seed={seed}"]
    if args.full:
        return sets
    epochs = args.epochs_r50 if r50 else args.epochs
    sets += [f"data.train_limit={args.train_limit_r50 if r50 else args.train_limit}"]
    sets += [f"data.test_limit={args.test_limit}"] if args.test_limit else []
    for stage in ("teacher", "student"):
        sets += [f"{stage}.epochs={epochs}"]
        sets += [f"{stage}.batch_size={args.batch_size}"] if args.batch_size else []
        sets += [f"{stage}.lr={args.lr}"] if args.lr else []
    return sets


def train_seed(args: argparse.Namespace, seed: int) -> dict[str, dict | None]:
    """Every run of one seed, ResNet18 first (the reverse-KD student loads its teacher)."""
    base, train = args.out / f"seed{seed}", not args.table_only
    runs = {"self_r18": run("cifar10_self_r18", base / "self_r18", overrides(args, seed, False), train, args.nproc)}
    if args.no_r50:
        return runs
    teacher = f"teacher.checkpoint={(base / 'self_r18').resolve()}"
    runs["reverse_r50"] = run(
        "cifar10_reverse_r50_from_r18", base / "reverse_r50", [*overrides(args, seed, True), teacher], train, args.nproc
    )
    runs["self_r50"] = run("cifar10_self_r50", base / "self_r50", overrides(args, seed, True), train, args.nproc)
    return runs


def table_rows(per_seed: dict[int, dict[str, dict | None]]) -> list[dict]:
    """One row per model/training with what it saw (epochs, images) and its test accuracy per seed."""
    rows = []
    for label, _recipe, folder, stage, _r50 in ROWS:
        found = [(seed, runs[folder]) for seed, runs in per_seed.items() if runs.get(folder)]
        found = [(seed, summary) for seed, summary in found if stage in summary]
        if not found:
            continue
        stages = [summary[stage] for _, summary in found]
        seconds = [s.get("train_seconds", 0) / max(s.get("epochs", 1), 1) for s in stages]
        accuracies = [100 * s["test_accuracy"] for s in stages]
        data = found[0][1]["data"]
        rows.append(
            {
                "row": label,
                "seeds": [seed for seed, _ in found],
                "epochs": stages[0].get("epochs"),
                "train_images": data["train_images"],
                "test_images": data["test_images"],
                "test_accuracy_percent": [round(a, 2) for a in accuracies],
                "mean": round(statistics.mean(accuracies), 2),
                "spread": round(max(accuracies) - min(accuracies), 2) if len(accuracies) > 1 else None,
                "teacher_at_chance": [s.get("teacher_at_chance") for s in stages],
                "seconds_per_epoch": round(statistics.mean(seconds), 1),
            }
        )
    return rows


def plot_curves(out: Path, seeds: list[int], png: Path) -> None:
    """Test accuracy per epoch of every row (colour) and seed (line style) in one PNG, from the runs'
    metrics.jsonl: where self- / reverse KD separates from its no-KD baseline, and by how much the seeds
    scatter."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(8, 4.8))
    for index, (label, _recipe, folder, stage, _r50) in enumerate(ROWS):
        for number, seed in enumerate(seeds):
            metrics = out / f"seed{seed}" / folder / "metrics.jsonl"
            if not metrics.is_file():
                continue
            lines = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
            points = [(m["epoch"], 100 * m["test_accuracy"]) for m in lines if m.get("stage") == stage]
            if points:
                style = {"color": f"C{index}", "linestyle": ("-", "--", ":")[number % 3], "marker": "."}
                axis.plot(*zip(*points, strict=True), **style, label=f"{label}, seed {seed}")
    axis.set(xlabel="epoch", ylabel="test accuracy %", title="CIFAR-10 subset: test accuracy per epoch")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    figure.savefig(png, dpi=120)
    print(f"wrote {png}")


def print_table(rows: list[dict]) -> None:
    print("| model (training) | epochs | train images | test images | test acc % per seed | mean | max-min | s/epoch |")
    print("| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: |")
    for row in rows:
        spread = "n/a" if row["spread"] is None else f"{row['spread']:.1f}"
        per_seed = " / ".join(f"{a:.1f}" for a in row["test_accuracy_percent"])
        print(
            f"| {row['row']} | {row['epochs']} | {row['train_images']:,} | {row['test_images']:,} | "
            f"{per_seed} | {row['mean']:.1f} | {spread} | {row['seconds_per_epoch']:.0f} |"
        )


def estimate(args: argparse.Namespace) -> None:
    """Expected GPU time per row of the full-data table: images x epochs x FLOPs / (efficiency x peak).
    An ESTIMATE, not a measurement: the efficiency is an assumption (see --gpu-efficiency)."""
    images, epochs, peak = 49_500, 200, args.gpu_tflops * 1e12 * args.gpu_efficiency * args.nproc
    print(
        f"ESTIMATE (not measured): {images:,} training images x {epochs} epochs, {args.gpu_tflops:.0f} "
        f"TFLOP/s bf16 dense peak x {args.gpu_efficiency:.0%} sustained x {args.nproc} GPU(s), ideal "
        "scaling; the per-epoch evaluation (+~7 %) not included"
    )
    print("| row | GFLOP per training image | expected hours |")
    print("| --- | ---: | ---: |")
    for label, _recipe, _folder, stage, r50 in ROWS:
        student, teacher = ("cifar_resnet50" if r50 else "cifar_resnet18"), None
        if stage == "student":
            teacher = "cifar_resnet18" if "reverse" in label else student
        gflop = TRAIN_GFLOP[student] + (FORWARD_GFLOP[teacher] if teacher else 0)
        hours = images * epochs * gflop * 1e9 / peak / 3600
        print(f"| {label} | {gflop:.2f} | {hours:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--full", action="store_true", help="the recipes as shipped: all data, 200 epochs")
    parser.add_argument("--nproc", type=int, default=1, help="GPUs: > 1 runs each recipe under torchrun")
    parser.add_argument("--estimate", action="store_true", help="expected GPU time per row; trains nothing")
    parser.add_argument("--gpu-tflops", type=float, default=989, help="bf16 dense peak (H100/H200 SXM: 989)")
    parser.add_argument(
        "--gpu-efficiency",
        type=float,
        default=0.04,
        help="assumed sustained share of the peak (32x32 convs at batch 128: launch-bound)",
    )
    parser.add_argument("--epochs", type=int, default=3, help="subset: ResNet18 runs (teacher and student)")
    parser.add_argument("--epochs-r50", type=int, default=2, help="subset: ResNet50 runs")
    parser.add_argument("--train-limit", type=int, default=1000)
    parser.add_argument("--train-limit-r50", type=int, default=400)
    parser.add_argument("--test-limit", type=int, default=None, help="default: all test images")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the recipe's (128)")
    parser.add_argument("--lr", type=float, default=None, help="default: the recipe's (0.1, warm-up)")
    parser.add_argument("--no-r50", action="store_true", help="ResNet18 rows only")
    parser.add_argument("--out", type=Path, default=Path("runs/bench_cifar10_kd"))
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--table-only", action="store_true", help="train nothing; tabulate finished runs")
    parser.add_argument("--plot", type=Path, help="also write test accuracy per epoch of every run here (PNG)")
    args = parser.parse_args()
    if args.estimate:
        estimate(args)
        return
    per_seed = {seed: train_seed(args, seed) for seed in args.seeds}
    rows = table_rows(per_seed)
    print_table(rows)
    if args.plot:
        plot_curves(args.out, args.seeds, args.plot)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        from cifar10_train_throughput import machine  # bench/ is on sys.path when run as a script

        result = {"command": " ".join(sys.argv), "machine": machine(), "rows": rows}
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
