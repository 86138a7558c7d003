"""Stage 3 of a search, the truth: each finalist's run is exported for real to the target (`kdedge export`'s
own code: the int8 file calibrated on real training images), then benched (`kdedge bench`'s code: the
file timed again in its own process, its accuracy measured from the file on the test split). The pick is
the most accurate finalist whose FILE meets the budget; SEARCH/best/ is a copy of its run, file included.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kdedge.errors import KdedgeError
from kdedge.experiments.search.target import Budget, Target
from kdedge.files.atomic import atomic_write_text

FINAL_KEYS = ("latency_ms_p50", "latency_ms_p90", "peak_mem_mb", "size_mb", "accuracy", "qwk", "test_count")


@dataclass(frozen=True)
class TruthSettings:
    """How the finalists are exported and measured."""

    target: Target
    budget: Budget
    threads: int
    batch: int
    seconds: float
    data_root: str | None
    timeout_s: float = 600.0


def target_file(run_dir: Path, target: Target, batch: int) -> Path:
    """Where `kdedge export` writes the student's file for the target: RUN/export/student.int8.onnx,
    student.int8.pte, student.int8.b1.tflite (fixed-batch formats name their batch)."""
    fmt = target.fmt if target.export_format != "onnx" else None
    if fmt is None:
        return run_dir / "export" / f"student.{target.precision}.onnx"
    from kdedge.export.edge import file_name

    return run_dir / "export" / file_name("student", fmt, target.precision, None if fmt.dynamic_batch else batch)


def export_finalist(run_dir: Path, settings: TruthSettings) -> Path:
    """The target's file of a finalist's student (kept when an earlier, interrupted search wrote it: every
    export file is written whole or not at all). Agreement with fp32 is measured, not required: the
    file's own accuracy is what the search compares."""
    path = target_file(run_dir, settings.target, settings.batch)
    if path.exists():
        return path
    from kdedge.export.options import check_request
    from kdedge.export.runner import export_run

    target = settings.target
    overrides = {"min_top1_agreement": 0.0}
    request = check_request(run_dir, "student", target.precision, target.export_format, str(settings.batch), overrides)
    export_run(request, data_root=settings.data_root, quiet=True)
    return path


def bench_finalist(run_dir: Path, path: Path, settings: TruthSettings) -> dict[str, Any]:
    """The bench row of the target's file: latency p50/p90, peak memory, size, accuracy (QWK on graded data)
    measured from the file."""
    from kdedge.bench.run import BenchOptions, run_bench

    options = BenchOptions(
        device="cpu",
        batch_sizes=(settings.batch,),
        threads=settings.threads,
        seconds=settings.seconds,
        runtimes=(settings.target.runtime,),
        data_root=settings.data_root,
        timeout_s=settings.timeout_s,
    )
    rows = run_bench([run_dir], options)["rows"]
    precision = settings.target.precision
    mine = [r for r in rows if r.get("file") == str(path) and r["precision"] == precision and r["stage"] == "student"]
    if not mine:
        return {"status": f"error: bench measured no {settings.target.runtime} {precision} row of {path.name}"}
    row = mine[0]
    return {key: row.get(key) for key in FINAL_KEYS} | {"status": row["status"], "file": str(path)}


def truth_stage(
    finalists: dict[str, Path], settings: TruthSettings, check_stop: Callable[[], None], progress=None
) -> dict[str, dict[str, Any]]:
    """{finalist name: its final measurement + `misses` ([] when the file meets the budget)}."""
    measured: dict[str, dict[str, Any]] = {}
    task = progress.add_task("export + bench", total=len(finalists)) if progress is not None else None
    for name, run_dir in finalists.items():
        check_stop()
        if task is not None:
            progress.update(task, description=f"export + bench: {name}")
        started = time.perf_counter()
        try:
            result = bench_finalist(run_dir, export_finalist(run_dir, settings), settings)
        except KdedgeError as err:
            result = {"status": f"error: export failed: {err}"}
        check_stop()  # a Ctrl-C may have cut the bench's child short: not a measurement
        result["misses"] = settings.budget.misses(result) if result["status"] == "ok" else []
        result["seconds"] = round(time.perf_counter() - started, 2)
        measured[name] = result
        if task is not None:
            progress.advance(task)
    return measured


def pick(measured: dict[str, dict[str, Any]], budget: Budget) -> tuple[str | None, str | None]:
    """(the most accurate finalist whose file meets the budget, the closest one when none does): ties in
    accuracy go to the lower latency."""
    ok = {name: m for name, m in measured.items() if m["status"] == "ok" and m.get("accuracy") is not None}
    fitting = [name for name, m in ok.items() if not m["misses"]]
    if fitting:
        return max(fitting, key=lambda n: (ok[n]["accuracy"], -ok[n][budget.latency_key], n)), None
    closest = min(ok, key=lambda n: (budget.overshoot(ok[n]), n), default=None)
    return None, closest


def copy_best(run_dir: Path, best_dir: Path, note: str) -> None:
    """SEARCH/best/: a copy of the pick's run directory (weights, recipe, summary, export/ with the file),
    built beside it and swapped in whole; BEST.txt says what it is."""
    staging = best_dir.with_name(f".{best_dir.name}.new")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(run_dir, staging, ignore=shutil.ignore_patterns(".lock", "*.state.safetensors"))
    atomic_write_text(staging / "BEST.txt", note + "\n")
    old = best_dir.with_name(f".{best_dir.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if best_dir.exists():
        best_dir.rename(old)
    staging.rename(best_dir)
    shutil.rmtree(old, ignore_errors=True)
