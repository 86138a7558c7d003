"""Data larger than memory: decode throughput, peak memory and epoch time of the memory-mapped image
cache against the same images copied into RAM.

Source images: real CIFAR-10 pictures (the subset in KDEDGE_DATA) upscaled to 256 x 256 with a per-file
crop offset and written as JPEG files (a generated set written from real images); kdedge decodes them
once to 224 x 224 x 3 uint8 (150,528 bytes per image) in its cache. Two sets, listed by CSV:

    small: ~1 GB of decoded pixels  (--small images)   memmap vs in-memory, no memory limit
    large: ~3x the memory limit     (--large images)   memmap in a memory cgroup of --limit-mb

Each measurement is a fresh child process that loads the set (the first one decodes it: images/s) and
trains a cheap student (an MLP: the data path, not the model, is what is timed) for one epoch over the
whole set, sampling its RSS (anonymous and file-backed separately) every 0.1 s.

    KDEDGE_DATA=/work/shared/data .venv/bin/python bench/own_images_memory.py

Writes bench/results/own_images_memory.json and prints a table. Heavy: run it through the lock.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BYTES_PER_IMAGE = 3 * 224 * 224


def _write_one(job: tuple[np.ndarray, int, Path]) -> None:
    from PIL import Image

    pixels, index, path = job
    big = Image.fromarray(pixels.transpose(1, 2, 0)).resize((288, 288), Image.Resampling.BICUBIC)
    dx, dy = index % 32, (index // 32) % 32  # each copy of a picture is a different crop
    big.crop((dx, dy, dx + 256, dy + 256)).save(path, quality=90)


def write_sources(folder: Path, count: int) -> list[tuple[str, str]]:
    """`count` JPEG files from the real CIFAR-10 subset; returns (relative path, class) rows."""
    from kdedge.data.load import load_data

    cifar = load_data("cifar10", None).train
    images, labels = cifar.images.numpy(), cifar.labels.numpy()
    (folder / "img").mkdir(parents=True, exist_ok=True)
    jobs = [(images[i % len(images)], i, folder / "img" / f"{i:06d}.jpg") for i in range(count)]
    with ProcessPoolExecutor(os.cpu_count()) as pool:
        list(pool.map(_write_one, jobs, chunksize=64))
    return [(f"img/{i:06d}.jpg", str(int(labels[i % len(labels)]))) for i in range(count)]


def write_csv(folder: Path, rows: list[tuple[str, str]], name: str) -> Path:
    path = folder / f"{name}.csv"
    path.write_text("image,label\n" + "".join(f"{image},{label}\n" for image, label in rows))
    return path


class RssSampler:
    """Peak VmRSS / RssAnon / RssFile of this process (MB), sampled every 0.1 s in a thread."""

    def __init__(self) -> None:
        self.peak = {"VmRSS": 0.0, "RssAnon": 0.0, "RssFile": 0.0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for line in Path("/proc/self/status").read_text().splitlines():
                key = line.split(":")[0]
                if key in self.peak:
                    self.peak[key] = max(self.peak[key], int(line.split()[1]) / 1024)
            time.sleep(0.1)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def child(csv_path: Path, mode: str, run_dir: Path) -> dict:
    """Load (decode on first use) and train one epoch; memory is sampled from before the load."""
    import torch

    from kdedge.data.types import Split
    from kdedge.files.rundir import RunDir
    from kdedge.recipe import validate_recipe
    from kdedge.train.pipeline import prepare_data, run_recipe

    torch.set_num_threads(os.cpu_count() or 1)
    recipe = validate_recipe(
        {
            "name": "memory",
            "seed": 0,
            "device": "cpu",
            "data": {
                "name": "csv",
                "path": str(csv_path),
                "image_size": 224,
                "in_channels": 3,
                "split": {"seed": 0, "val": 0.0, "test": 0.05},
                "mean": [0.5] * 3,
                "std": [0.25] * 3,
            },
            "student": {
                "model": "mlp",
                "model_kwargs": {"hidden": [16]},
                "epochs": 1,
                "batch_size": 64,
                "optimizer": "sgd",
                "lr": 0.001,
                "eval_batch_size": 64,
            },
            "distillation": {"loss": "none"},
        }
    )
    with RssSampler() as sampler:
        started = time.perf_counter()
        bundle = prepare_data(recipe, None)
        load_seconds = time.perf_counter() - started
        if mode == "memory":  # everything copied into RAM: the path the cache replaces
            copy = lambda s: Split(s.images.clone(), s.labels, s.ids)  # noqa: E731
            bundle = replace(bundle, train=copy(bundle.train), test=copy(bundle.test))
        run_recipe(recipe, RunDir(run_dir), None, stages=("student",), bundle=bundle)
    epoch = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[0])  # the loop's own timing
    return {
        "mode": mode,
        "images": len(bundle.train) + len(bundle.test),
        "decoded_gb": round((len(bundle.train) + len(bundle.test)) * BYTES_PER_IMAGE / 1e9, 2),
        "load_seconds": round(load_seconds, 1),
        "epoch_seconds": epoch["epoch_seconds"],
        "peak_rss_mb": round(sampler.peak["VmRSS"]),
        "peak_rss_anon_mb": round(sampler.peak["RssAnon"]),
        "peak_rss_file_mb": round(sampler.peak["RssFile"]),
    }


def memory_cgroup(limit_mb: int) -> Path | None:
    """A memory cgroup (v1) nested under this process's own, limited to limit_mb; None when not allowed."""
    try:
        own = next(
            line.split(":", 2)[2]
            for line in Path("/proc/self/cgroup").read_text().splitlines()
            if line.split(":")[1] == "memory"
        )
        group = Path("/sys/fs/cgroup/memory") / own.lstrip("/") / f"kdedge-bench-{os.getpid()}"
        group.mkdir()
        (group / "memory.limit_in_bytes").write_text(str(limit_mb * 2**20))
        return group
    except (OSError, StopIteration, IndexError):
        return None


def run_child(csv_path: Path, mode: str, run_dir: Path, cache: Path, group: Path | None = None) -> dict:
    """One measurement in a fresh process (optionally inside the cgroup); returns its JSON line."""
    env = os.environ | {"KDEDGE_CACHE": str(cache)}
    command = [sys.executable, __file__, "--child", str(csv_path), mode, str(run_dir)]
    joins = (lambda: (group / "cgroup.procs").write_text(str(os.getpid()))) if group else None
    done = subprocess.run(command, env=env, capture_output=True, text=True, preexec_fn=joins)
    if done.returncode != 0:
        return {"mode": mode, "failed": f"exit {done.returncode}: {done.stderr.strip().splitlines()[-1:]}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=6600, help="images of the ~1 GB set")
    parser.add_argument("--large", type=int, default=14000, help="images of the ~3x-limit set")
    parser.add_argument("--limit-mb", type=int, default=700, help="memory limit of the large-set process")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "own_images_memory.json")
    parser.add_argument("--parts", default="small,large", help="which sets to measure (small, large)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        rows = write_sources(folder, args.large)
        write_seconds = time.perf_counter() - started
        small, large = write_csv(folder, rows[: args.small], "small"), write_csv(folder, rows, "large")
        results = {}
        if "small" in args.parts:
            results["small_memmap_first_load"] = run_child(small, "memmap", folder / "r1", folder / "cache")
            results["small_in_memory"] = run_child(small, "memory", folder / "r2", folder / "cache")
            results["small_memmap"] = run_child(small, "memmap", folder / "r3", folder / "cache")  # built
        group = memory_cgroup(args.limit_mb) if "large" in args.parts else None
        try:  # decodes the large set inside the limit too, then trains one epoch from the map
            if "large" in args.parts:
                results["large_memmap_first_load"] = run_child(large, "memmap", folder / "r4", folder / "cache", group)
        finally:
            if group is not None:
                group.rmdir()
    names = ("small_memmap_first_load", "small_memmap", "small_in_memory")
    first, memmap, memory = (results.get(name, {}) for name in names)
    measured = all("epoch_seconds" in r for r in (first, memmap, memory))
    record = {
        "command": f"python bench/own_images_memory.py --small {args.small} --large {args.large} "
        f"--limit-mb {args.limit_mb}",
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "source_jpeg_write_seconds": round(write_seconds, 1),
        "large_limit_mb": args.limit_mb if group else None,
        "decode_images_per_second": round(first["images"] / first["load_seconds"], 1) if measured else None,
        "epoch_ratio_memmap_over_memory": round(memmap["epoch_seconds"] / memory["epoch_seconds"], 2)
        if measured
        else None,
        **results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        print(json.dumps(child(Path(sys.argv[2]), sys.argv[3], Path(sys.argv[4]))))
    else:
        main()
