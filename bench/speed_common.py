"""What the whole-process speed benchmarks (side_by_side.py, distill_overhead.py, sweep_cache.py) share:
the machine line with its load, a timed `python -m kdedge ...` process, and the results file."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
KDEDGE = [sys.executable, "-m", "kdedge"]


def machine() -> str:
    """CPU model, cores (and how many this process may use), Python and torch versions."""
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").is_file() else []
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo if "model name" in line), platform.processor())
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{model}, {os.cpu_count()} cores ({usable} usable by this process), Python {platform.python_version()}"


def load() -> float:
    """The 1-minute load average now."""
    return os.getloadavg()[0]


def environment(threads: int | None) -> dict[str, str]:
    """This environment, with OMP_NUM_THREADS & co. set to `threads` (removed for None: torch's default)."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env |= {"PYTHONPATH": str(ROOT), "COLUMNS": "120"}
    return env | ({"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)} if threads else {})


def start(argv: list[str], env: dict[str, str]) -> subprocess.Popen:
    """A `python -m kdedge ARGV` process, its output kept for a failure's message."""
    return subprocess.Popen([*KDEDGE, *argv], env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def finish(proc: subprocess.Popen) -> None:
    """Wait for `proc`; a failure stops the benchmark with its last lines."""
    out, _ = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"error: {' '.join(map(str, proc.args))} exited {proc.returncode}:\n{out.decode()[-800:]}")


def timed(argv: list[str], env: dict[str, str]) -> float:
    """Wall seconds of one `python -m kdedge ARGV` process."""
    started = time.perf_counter()
    finish(start(argv, env))
    return time.perf_counter() - started


def write_result(name: str, result: dict) -> Path:
    """bench/results/NAME.json in the results table format (kdedge.report.results_page; date and machine added)."""
    path = RESULTS / f"{name}.json"
    result = {"date": date.today().isoformat(), **result}
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path.relative_to(ROOT)}")
    return path


def print_rows(columns: list[str], rows: list[list]) -> None:
    """A plain aligned table on stdout."""
    width = [max(len(str(r[i])) for r in [columns, *rows]) for i in range(len(columns))]
    for row in [columns, *rows]:
        print("  ".join(str(cell).ljust(w) for cell, w in zip(row, width, strict=True)))
