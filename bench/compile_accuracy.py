"""Accuracy beside speed: the same short `kdedge train` eager and with `--set compile=true`, per recipe.

Same recipe, seed, data slice and epochs; only `compile` differs (the compiled run starts from an empty
inductor cache). Prints and saves both test accuracies, their difference against the binomial noise of the
test set, and each epoch's training seconds (the first compiled epoch includes the compilation):

    KDEDGE_DATA=../shared/data python bench/compile_accuracy.py --threads 2 \
        --json bench/results/train_compile_accuracy.json              # both recipes, 4 epochs, all data
    KDEDGE_DATA=../shared/data python bench/compile_accuracy.py --recipes retina_convnext_teacher \
        --threads 1 --json /tmp/accuracy.json                         # ConvNeXt-T only
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from speed_common import environment, load, machine, start  # bench/ is on sys.path when run as a script

RECIPES = {  # recipe -> overrides that shorten it to `epochs` (the step schedule halves the lr halfway)
    "cifar10_resnet18": lambda epochs: {"teacher.epochs": epochs},
    "retina_convnext_teacher": lambda epochs: {"teacher.epochs": epochs, "teacher.step_epochs": max(1, epochs // 2)},
}


def train(recipe: str, overrides: dict, threads: int, out: Path) -> dict:
    """One `kdedge train` into `out` (its own empty inductor cache): the teacher's summary entry, the
    epochs' training seconds and the process's wall seconds."""
    argv = ["train", recipe, "--out", str(out), "--threads", str(threads), "--force"]
    for key, value in overrides.items():
        argv += ["--set", f"{key}={value}"]
    env = environment(threads) | {"TORCHINDUCTOR_CACHE_DIR": str(out.parent / f"{out.name}-inductor")}
    started = time.perf_counter()
    proc = start(argv, env)
    output, _ = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"error: kdedge {' '.join(argv)} exited {proc.returncode}:\n{output.decode()[-800:]}")
    summary = json.loads((out / "summary.json").read_text())["teacher"]
    epochs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return {
        "test_accuracy": summary["test_accuracy"],
        "test_count": summary["test_count"],
        "at_chance": bool(summary.get("teacher_at_chance", False)),  # kdedge's check: no better than a guess
        "train_seconds": summary["train_seconds"],
        "epoch_train_seconds": [round(e["epoch_seconds"], 1) for e in epochs if "epoch_seconds" in e],
        "wall_seconds": round(time.perf_counter() - started, 1),
    }


def compare(recipe: str, args: argparse.Namespace, work: Path) -> dict:
    """Eager and compiled runs of `recipe`, and whether their test accuracies differ by more than noise."""
    overrides = RECIPES[recipe](args.epochs) | ({"data.train_limit": args.train_limit} if args.train_limit else {})
    runs = {
        name: train(recipe, overrides | {"compile": name == "compiled"}, args.threads, work / f"{recipe}-{name}")
        for name in ("eager", "compiled")
    }
    eager, compiled = runs["eager"], runs["compiled"]
    p, n = eager["test_accuracy"], eager["test_count"]
    noise = 2 * math.sqrt(2 * p * (1 - p) / n)  # 2 std of the difference of two accuracies on n images
    difference = compiled["test_accuracy"] - eager["test_accuracy"]
    return {
        "recipe": recipe,
        "overrides": overrides,
        "threads": args.threads,
        **runs,
        "difference": round(difference, 4),
        "noise_2std": round(noise, 4),
        "same_within_noise": abs(difference) <= noise and not (eager["at_chance"] or compiled["at_chance"]),
        "load_average_1min": round(load(), 2),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--train-limit", type=int, help="train on the first N training images (default: all)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, help="write the comparison here")
    args = parser.parse_args(argv)
    print(f"{machine()}, load average {load():.2f}")
    results = []
    with tempfile.TemporaryDirectory(prefix="compile-accuracy-") as work:
        for recipe in args.recipes:
            result = compare(recipe, args, Path(work))
            results.append(result)
            print(f"{recipe}: test accuracy eager {result['eager']['test_accuracy']:.4f}, compiled "
                  f"{result['compiled']['test_accuracy']:.4f} (difference {result['difference']:+.4f}, noise "
                  f"+-{result['noise_2std']:.4f}); epoch seconds eager {result['eager']['epoch_train_seconds']}, "
                  f"compiled {result['compiled']['epoch_train_seconds']}", flush=True)  # fmt: skip
    if args.json:
        command = "python bench/compile_accuracy.py " + " ".join(sys.argv[1:] if argv is None else argv)
        result = {"date": date.today().isoformat(), "machine": machine(), "command": command, "runs": results}
        args.json.write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
