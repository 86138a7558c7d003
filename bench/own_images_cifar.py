"""Your own images vs the built-in loader: the CIFAR-10 subset written as PNG files in the
PATH/train|val|test/<class>/ layout, then the same recipe trained on `data.name: folder` and on the
built-in `cifar10` loader with the same split (the built-in's seeded val_size split, written as the
folder's val/). The target: the student's test accuracies within 2 points. One run per source
differs by more than that from training noise alone (the folder lists its images in another order, so the
batches differ), so each seed writes its own split and the target is read on the mean over --seeds.

    KDEDGE_DATA=/work/shared/data .venv/bin/python bench/own_images_cifar.py [--epochs 15] [--seeds 0 1 2]

Writes bench/results/own_images_cifar.json and prints a table. Heavy (minutes): run it through the lock.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # tests/image_files.py: the writer the tests use too

from image_files import write_images  # noqa: E402

from kdedge.data.types import DataBundle, Split  # noqa: E402
from kdedge.recipe import validate_recipe  # noqa: E402
from kdedge.train.pipeline import prepare_data  # noqa: E402


def recipe(data: dict, epochs: int, seed: int = 0) -> dict:
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
        "seed": seed,
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


def same_images(a: DataBundle, b: DataBundle) -> bool:
    """Do two bundles hold the same (pixels, label) pairs per split, in whatever order? Then the only
    difference left between their runs is the order the images are listed in."""

    def content(split: Split) -> list[tuple[int, bytes]]:
        pixels = split.images.numpy()
        return sorted(
            (int(label), hashlib.sha256(pixels[i].tobytes()).digest()) for i, label in enumerate(split.labels)
        )

    return all(content(getattr(a, name)) == content(getattr(b, name)) for name in ("train", "val", "test"))


def one_seed(seed: int, epochs: int, folder: Path) -> dict:
    """The built-in run and the folder run of one seed, the folder holding that seed's split as PNG files."""
    builtin = recipe({"name": "cifar10", "val_size": 500}, epochs, seed)
    bundle = prepare_data(validate_recipe(builtin), None)  # the built-in split of this seed, written as files
    parts = {"train": bundle.train, "val": bundle.val, "test": bundle.test}
    splits = {name: (part.images.numpy(), part.labels.numpy()) for name, part in parts.items()}
    images = write_images(splits, bundle.class_names, folder / f"cifar_s{seed}", "split")
    own = recipe({"name": "folder", "path": str(images), "image_size": 32}, epochs, seed)
    identical = same_images(bundle, prepare_data(validate_recipe(own), None))
    return {
        "builtin_cifar10": distill(builtin, folder, f"builtin_s{seed}"),
        "folder": distill(own, folder, f"folder_s{seed}"),
        "same_images": identical,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "own_images_cifar.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["KDEDGE_CACHE"] = str(Path(tmp) / "cache")
        runs = {seed: one_seed(seed, args.epochs, Path(tmp)) for seed in args.seeds}
    sources = ("builtin_cifar10", "folder")
    results = {}
    for name in sources:
        student = [runs[seed][name]["student_test_accuracy"] for seed in args.seeds]
        teacher = [runs[seed][name]["teacher_test_accuracy"] for seed in args.seeds]
        results[name] = runs[args.seeds[0]][name] | {
            "student_test_accuracy": statistics.mean(student),
            "teacher_test_accuracy": statistics.mean(teacher),
            "student_per_seed": student,
            "teacher_per_seed": teacher,
        }
    gap = 100 * (results["folder"]["student_test_accuracy"] - results["builtin_cifar10"]["student_test_accuracy"])
    record = {
        "command": f"python bench/own_images_cifar.py --epochs {args.epochs} --seeds {' '.join(map(str, args.seeds))}",
        "epochs": args.epochs,
        "seeds": args.seeds,
        "load_average": os.getloadavg(),
        **results,
        "same_images_and_labels_per_seed": [runs[seed]["same_images"] for seed in args.seeds],
        "student_gap_points": round(gap, 2),
        "within_2_points": abs(gap) <= 2.0,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"{'source':<16} {'teacher acc per seed':>24} {'student acc per seed':>24}")
    for name in sources:
        row = results[name]
        teacher = " / ".join(f"{100 * a:.1f}" for a in row["teacher_per_seed"])
        student = " / ".join(f"{100 * a:.1f}" for a in row["student_per_seed"])
        print(f"{name:<16} {teacher:>24} {student:>24}")
    print(f"student gap of the means (folder - built-in): {gap:+.2f} points; within 2: {record['within_2_points']}")


if __name__ == "__main__":
    main()
