"""The teacher-logit cache in a sweep: a 10-point `kdedge sweep` (hinton_mnist_sweep: alpha 0.5, 0.9 x
temperature 1, 2.5, 4, 8, 20; the teacher given) with distillation.cache_teacher_logits on (the default:
the teacher runs over the training set once, every point reads SWEEP/teacher_logits.safetensors) and off
(the teacher runs on every batch of every point), each a fresh process, in one run.

    taskset -c 1 env OMP_NUM_THREADS=1 .venv/bin/python bench/sweep_cache.py --teacher T.safetensors

Time per point: each point's student train_seconds (summary.json; the first cached point also computes and
writes the logits) and the sweep's wall time / points. Writes bench/results/sweep_teacher_cache.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from speed_common import environment, finish, load, machine, print_rows, start, write_result

THREADS = int(os.environ.get("OMP_NUM_THREADS", "0")) or None  # passed on to the sweep process


def sweep(teacher: str, out: Path, cache: bool, epochs: int, limit: int) -> dict:
    """One sweep process: its wall seconds and, per point, (train seconds, test errors)."""
    sets = [
        f"teacher.checkpoint={teacher}",
        f"student.epochs={epochs}",
        f"data.train_limit={limit}",
        "sweep.baseline=false",
        f"distillation.cache_teacher_logits={str(cache).lower()}",
    ]
    started = time.perf_counter()
    finish(start(["sweep", "hinton_mnist_sweep", "--set", *sets, "--out", str(out), "--quiet"], environment(THREADS)))
    wall = time.perf_counter() - started
    points = sorted(
        (out / "points").iterdir(),
        key=lambda p: json.loads((p / "summary.json").read_text())["student"]["train_seconds"],
    )
    summaries = [json.loads((p / "summary.json").read_text())["student"] for p in points]
    return {
        "wall": wall,
        "seconds": [s["train_seconds"] for s in summaries],
        "errors": [s["test_errors"] for s in summaries],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--teacher", required=True)
    parser.add_argument("--epochs", type=int, default=2, help="student epochs per point")
    parser.add_argument("--train-limit", type=int, default=20000)
    parser.add_argument("--name", default="sweep_teacher_cache")
    args = parser.parse_args()
    teacher = str(Path(args.teacher).resolve())
    loads, found = [load()], {}
    with tempfile.TemporaryDirectory(prefix="kdedge-cache-") as tmp:
        for cache in (True, False):
            found[cache] = sweep(teacher, Path(tmp) / str(cache), cache, args.epochs, args.train_limit)
            loads.append(load())
    columns, rows, ratio = table(found)
    print_rows(columns, rows)
    threads = os.environ.get("OMP_NUM_THREADS", "default")
    line = f"{machine()}; {threads} thread(s); 1-min load average {', '.join(f'{x:.2f}' for x in loads)}"
    print(line)
    write(args, columns, rows, found, ratio, line)


def table(found: dict) -> tuple[list[str], list[list[str]], float]:
    """Columns, one row per setting and the ratio row; the ratio of the median point seconds."""
    rows = []
    for cache, label in ((True, "cache on (default)"), (False, "cache off")):
        r = found[cache]
        n = len(r["seconds"])
        rows.append(
            [
                label,
                str(n),
                f"{statistics.median(r['seconds']):.2f}",
                f"{max(r['seconds']):.2f}",
                f"{r['wall'] / n:.2f}",
                f"{r['wall']:.1f}",
                f"{statistics.mean(r['errors']):.1f}",
            ]
        )
    on, off = found[True], found[False]
    ratio = statistics.median(off["seconds"]) / statistics.median(on["seconds"])
    rows.append(["cache off / cache on", "", f"{ratio:.2f}x", "", f"{off['wall'] / on['wall']:.2f}x", "", ""])
    columns = [
        "teacher logits",
        "points",
        "median point s",
        "slowest point s",
        "sweep wall / points s",
        "sweep wall s",
        "mean test errors",
    ]
    return columns, rows, ratio


def write(args, columns, rows, found, ratio: float, line: str) -> None:
    on, off = (statistics.median(found[cache]["seconds"]) for cache in (True, False))
    write_result(
        args.name,
        {
            "title": "The teacher-logit cache in a 10-point sweep",
            "experiment": "bench/sweep_cache.py",
            "order": 97,
            "headline": f"10-point MNIST sweep: a point trains {ratio:.2f}x as long without the teacher-logit cache "
            f"(median {off:.2f} s vs {on:.2f} s; {line.split('; ', 1)[1]})",
            "machine": line,
            "commands": [
                "taskset -c 1 env OMP_NUM_THREADS=1 KDEDGE_DATA=/work/shared/data .venv/bin/python "
                "bench/sweep_cache.py "
                f"--teacher TEACHER --epochs {args.epochs} --train-limit {args.train_limit}",
                "each sweep: kdedge sweep hinton_mnist_sweep --set teacher.checkpoint=TEACHER student.epochs=E "
                "data.train_limit=N sweep.baseline=false distillation.cache_teacher_logits=true|false",
                "TEACHER: kdedge train hinton_mnist_800 --set teacher.epochs=1 teacher.cosine_cycles=null (the same "
                "1200-1200 MLP teacher as hinton_mnist_sweep)",
            ],
            "source": "printed by the command; point s: the student stage's train_seconds in its summary.json",
            "columns": columns,
            "rows": rows,
            "notes": [
                "with the cache on, the first point computes the teacher's logits over the training set and writes "
                "SWEEP/teacher_logits.safetensors (its time is in that point's seconds: the slowest point); the "
                "others read it",
                "mean test errors: the same students either way (the cached logits are the teacher's eval-mode "
                "outputs the uncached run computes per batch)",
            ],
        },
    )


if __name__ == "__main__":
    main()
