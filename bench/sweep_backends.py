"""Wall time of the 2x30 Hinton sweep (`hinton_mnist_sweep`: alpha {0.5, 0.9} x T {1, 2.5, 4, 8, 20}, 10
points + the no-KD baseline = 11 student runs) on the local backend and on Ray, on this machine.

The teacher is trained ONCE (784-256-10, unaugmented, --teacher-epochs; kept in --work, reused by later
runs) and loaded by every sweep through
--set teacher.checkpoint=..., so the timed part is the 11 student runs plus whatever the backend adds.
Each sweep runs in its own process, from an empty folder, one after another, every point with ONE torch
thread (OMP_NUM_THREADS=1; on a shared 2-core machine a second thread only spin-waits: a first try with
two threads took ~110 s per 2-epoch point instead of seconds):

  local     `kdedge sweep ... --backend local`                              one point at a time
  ray-1     `kdedge sweep ... --backend ray --cpus 1 --cpus-per-point 1`    one point at a time: the
                                                                             difference is Ray's overhead
  ray       `kdedge sweep ... --backend ray --cpus-per-point 1`             one point per CPU, in parallel

    KDEDGE_DATA=/work/shared/data .venv/bin/python bench/sweep_backends.py --student-epochs 3
    KDEDGE_DATA=/work/shared/data .venv/bin/python bench/sweep_backends.py --student-epochs 25  # recipe's

It prints a table and writes bench/results/sweep_backends.json: each command, its wall time, the overhead
per point against the local backend, the load average around it, and whether sweep.csv (timing columns
dropped) is the same file for every backend.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RECIPE = "hinton_mnist_sweep"
POINTS = 11  # 10 grid points + the no-KD baseline
TEACHER_HIDDEN = "[256]"
NOTE = (
    "every sweep ran with OMP_NUM_THREADS=1 (one torch thread per point), one after another, on a 2-core "
    "machine shared with other jobs (load average before/after each run given); overhead per point = "
    "(wall - local wall) / points, Ray's start-up included"
)


def run(command: list[str]) -> float:
    """Run `command` with one torch thread (output to this terminal's stderr); its wall seconds. A failure
    stops the benchmark."""
    started = time.perf_counter()
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    subprocess.run(command, check=True, cwd=ROOT, stdout=sys.stderr, env=env)
    return time.perf_counter() - started


def teacher(work: Path, epochs: int) -> Path:
    """The recipe's teacher trained for `epochs` (kept in work/teacher; reused when already there)."""
    weights = work / "teacher" / "teacher.safetensors"
    if not weights.is_file():
        # small and unaugmented: the recipe's 1200-1200 teacher with affine warps takes many minutes per
        # epoch on a shared CPU, and the teacher does not change how long its students take (the points
        # read its logits from the cache)
        run(
            [
                sys.executable,
                "-m",
                "kdedge",
                "train",
                RECIPE,
                "--set",
                f"teacher.epochs={epochs}",
                "--set",
                "teacher.augment=none",
                f"teacher.model_kwargs.hidden={TEACHER_HIDDEN}",
                "--out",
                str(work / "teacher"),
                "--force",
                "-q",
            ]
        )
    return weights


def table(path: Path) -> list[dict]:
    """sweep.csv's rows without the timing column (the only one allowed to differ)."""
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    return [{k: v for k, v in row.items() if k != "train_seconds"} for row in rows]


def as_table(report: dict, args: argparse.Namespace) -> dict:
    """The keys of the results table format (kdedge.report.results_page, docs/results.md), from the measured runs."""
    runs = report["runs"]
    shortened = f"student.epochs={args.student_epochs}" + (
        f", data.train_limit={args.train_limit}" if args.train_limit else ""
    )
    extra = runs["ray-1"]["overhead_per_point_seconds"]
    return {
        "title": "Sweep backends: the 2x30 grid on the local backend and on Ray",
        "experiment": "bench/sweep_backends.py",
        "order": 90,
        "headline": f"Ray adds {extra:+.2f} s per point (mostly its start) on 2 shared CPUs; same sweep.csv",
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{report['cpus']} CPUs shared with other jobs (load: see rows), 1 torch thread",
        "commands": ["python " + " ".join(sys.argv)] + [r["command"] for r in runs.values()],
        "source": "bench/results/sweep_backends.json (runs)",
        "columns": ["backend", "wall s", "overhead per point s", "load (before, after)"],
        "rows": [
            [name, r["wall_seconds"], r["overhead_per_point_seconds"], str(r["load_average_1min"])]
            for name, r in runs.items()
        ],
        "notes": [
            f"11 student runs (10 grid points + the no-KD baseline), shortened identically: {shortened}",
            NOTE,
            f"sweep.csv identical across backends (timing column dropped): {report['sweep_csv_identical']}",
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "bench_sweep_backends")
    parser.add_argument("--student-epochs", type=int, default=3, help="the recipe's is 25")
    parser.add_argument("--teacher-epochs", type=int, default=1)
    parser.add_argument("--train-limit", type=int, default=None, help="students train on the first N images")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "sweep_backends.json")
    args = parser.parse_args()
    cpus = os.cpu_count() or 1
    weights = teacher(args.work, args.teacher_epochs)
    common = [
        sys.executable,
        "-m",
        "kdedge",
        "sweep",
        RECIPE,
        "--set",
        f"teacher.checkpoint={weights}",
        f"teacher.model_kwargs.hidden={TEACHER_HIDDEN}",
        f"student.epochs={args.student_epochs}",
        *([f"data.train_limit={args.train_limit}"] if args.train_limit else []),
        "-q",
    ]
    backends = {
        "local": ["--backend", "local"],
        "ray-1": ["--backend", "ray", "--cpus", "1", "--cpus-per-point", "1"],
        "ray": ["--backend", "ray", "--cpus", str(cpus), "--cpus-per-point", "1"],
    }
    results = {}
    for name, options in backends.items():
        out = args.work / name
        shutil.rmtree(out, ignore_errors=True)
        command = [*common, *options, "--out", str(out)]
        load_before = os.getloadavg()[0]
        seconds = run(command)
        results[name] = {
            "command": shlex.join(["kdedge", *command[3:]]),
            "wall_seconds": round(seconds, 1),
            "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            "rows": table(out / "sweep.csv"),
        }
    local = results["local"]["wall_seconds"]
    for result in results.values():
        result["overhead_per_point_seconds"] = round((result["wall_seconds"] - local) / POINTS, 2)
    same = all(result["rows"] == results["local"]["rows"] for result in results.values())
    report = {
        "recipe": RECIPE,
        "points": POINTS,
        "student_epochs": args.student_epochs,
        "teacher_epochs": args.teacher_epochs,
        "student_train_limit": args.train_limit,
        "note": NOTE,
        "cpus": cpus,
        "sweep_csv_identical": same,
        "runs": {name: {k: v for k, v in r.items() if k != "rows"} for name, r in results.items()},
        "best_point": results["local"]["rows"][0],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(as_table(report, args) | report, indent=2) + "\n")
    print(
        f"{RECIPE}: {POINTS} student runs of {args.student_epochs} epochs on {cpus} CPUs; "
        f"sweep.csv identical across backends: {same}"
    )
    for name, result in report["runs"].items():
        overhead = result["overhead_per_point_seconds"]
        print(
            f"  {name:7s} {result['wall_seconds']:7.1f} s  overhead/point {overhead:+6.2f} s"
            f"  load {result['load_average_1min']}  {result['command']}"
        )
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
