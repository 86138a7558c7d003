"""CPU threads when a machine is shared: each process of kdedge's own parallel paths gets its share of the
cores, and a run that starts on a busy machine says how to take less.

PyTorch (OpenMP) starts one thread per core and spins them while they wait; two such processes on the same
cores take turns at every parallel region, and a training can run many times slower than alone. So:

- `kdedge sweep --jobs N` (local backend): each worker gets share(N) = max(1, cores // N) threads, through
  OMP_NUM_THREADS / MKL_NUM_THREADS (read when the worker imports torch) and torch.set_num_threads;
- the Ray backend: a point gets int(--cpus-per-point) threads (at least 1);
- `kdedge distill` / `train --threads N`: N torch threads (default: torch's own, one per core).

Needs no torch: limit() sets torch's count only where torch is already imported.
"""

from __future__ import annotations

import os
import sys

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity: `taskset -c 1` gives 1), else os.cpu_count()."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def share(jobs: int, cores: int | None = None) -> int:
    """Threads for each of `jobs` processes sharing `cores` (default: usable_cores()): max(1, cores // jobs)."""
    return max(1, (cores or usable_cores()) // max(1, jobs))


def point_threads(cpus_per_point: float) -> int:
    """Threads of a Ray point given --cpus-per-point (0.5 -> 1: a fraction of a CPU still runs one thread)."""
    return max(1, int(cpus_per_point))


def limit(threads: int) -> None:
    """Use `threads` threads in this process and in the processes it starts from now on (the environment
    variables), and in torch when torch is imported already."""
    if threads < 1:
        raise ValueError(f"threads must be >= 1 (got {threads})")
    for name in THREAD_VARIABLES:
        os.environ[name] = str(threads)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)


def busy_hint(threads: int | None, load: float | None = None, cores: int | None = None) -> str | None:
    """The one line to print at the start of a training when the machine is busy: its 1-minute load average
    is already >= half its cores. None when it is not, or when the user chose --threads."""
    if threads is not None:
        return None
    cores = cores or os.cpu_count() or 1
    load = os.getloadavg()[0] if load is None and hasattr(os, "getloadavg") else load
    if load is None or load < cores / 2:
        return None
    return (
        f"another job is using the CPU (load average {load:.1f} on {cores} cores): if this run is slow, give "
        "it fewer threads with --threads 1 (or OMP_NUM_THREADS=1), and the other job too"
    )
