"""Your own images vs the built-in loader: the CIFAR-10 subset written as PNG files in the
PATH/train|val|test/<class>/ layout, then the same recipe trained on `data.name: folder` and on the
built-in `cifar10` loader with the same split (the built-in's seeded val_size split, written as the
folder's val/). Issue 18's target: the student's test accuracies within 2 points.

    KDEDGE_DATA=/work/shared/data .venv/bin/python bench/own_images_cifar.py [--epochs 8]

Writes bench/results/own_images_cifar.json and prints a table. Heavy (minutes): run it through the lock.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # tests/image_files.py: the writer the tests use too

from image_files import write_images  # noqa: E402

from kdedge.recipe import validate_recipe  # noqa: E402
from kdedge.train.pipeline import prepare_data  # noqa: E402


def recipe(data: dict, epochs: int) -> dict:
    """One recipe for both runs, only data differs: small CNN teacher -> narrower small CNN student."""
    stage = {
        "epochs": epochs,
        "batch_size": 128,
        "optimizer": "sgd",
        "lr": 0.02,
        "momentum": 0.9,
        "nesterov": True,
        "weight_decay": 5e-4,
        "schedule": "cosine",
    }
    return {
        "name": "own_images_cifar",
        "seed": 0,
        "device": "cpu",
        "data": data,
        "teacher": {"model": "small_cnn", "model_kwargs": {"width": 16}, **stage},
        "student": {"model": "small_cnn", "model_kwargs": {"width": 8}, **stage},
        "distillation": {"loss": "hinton", "alpha": 0.5, "temperature": 4},
    }


def distill(config: dict, folder: Path, name: str) -> dict:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "kdedge", "distill", str(path), "--out", str(folder / name), "-q"], check=True
    )
    print(f"{name}: done in {time.perf_counter() - started:.0f} s", flush=True)
    summary = json.loads((folder / name / "summary.json").read_text())
    return {
        "student_test_accuracy": summary["student"]["test_accuracy"],
        "teacher_test_accuracy": summary["teacher"]["test_accuracy"],
        "test_images": summary["data"]["test_images"],
        "train_images": summary["data"]["train_images"],
        "mean": summary["data"]["mean"],
        "std": summary["data"]["std"],
        "seconds": round(time.perf_counter() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "own_images_cifar.json")
    args = parser.parse_args()
    builtin = recipe({"name": "cifar10", "val_size": 500}, args.epochs)
    bundle = prepare_data(validate_recipe(builtin), None)  # the built-in split, to write as files
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        parts = {"train": bundle.train, "val": bundle.val, "test": bundle.test}
        splits = {name: (part.images.numpy(), part.labels.numpy()) for name, part in parts.items()}
        started = time.perf_counter()
        images = write_images(splits, bundle.class_names, folder / "cifar", "split")
        written = round(time.perf_counter() - started, 1)
        os.environ["KDEDGE_CACHE"] = str(folder / "cache")
        own = recipe({"name": "folder", "path": str(images), "image_size": 32}, args.epochs)
        results = {"builtin_cifar10": distill(builtin, folder, "builtin"), "folder": distill(own, folder, "folder")}
    accuracy = {name: row["student_test_accuracy"] for name, row in results.items()}
    gap = 100 * (accuracy["folder"] - accuracy["builtin_cifar10"])
    record = {
        "command": f"python bench/own_images_cifar.py --epochs {args.epochs}",
        "epochs": args.epochs,
        "png_write_seconds": written,
        "load_average": os.getloadavg(),
        **results,
        "student_gap_points": round(gap, 2),
        "within_2_points": abs(gap) <= 2.0,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"{'source':<16} {'teacher acc':>12} {'student acc':>12} {'seconds':>8}")
    for name in ("builtin_cifar10", "folder"):
        row = results[name]
        teacher, student = 100 * row["teacher_test_accuracy"], 100 * row["student_test_accuracy"]
        print(f"{name:<16} {teacher:>11.2f}% {student:>11.2f}% {row['seconds']:>8}")
    print(f"student gap (folder - built-in): {gap:+.2f} points; within 2: {record['within_2_points']}")


if __name__ == "__main__":
    main()
