"""Latency measurement: warm-up, then time-based repetitions, then percentiles.

Time-based (not count-based) so a 0.05 ms MLP and a 2 s Swin at batch 32 both get a stable median in
about `seconds`; at least `min_reps` calls are always timed so slow rows still get percentiles.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np


def summarize(latencies_ms: np.ndarray, batch_size: int) -> dict[str, float | int]:
    """p50/p90/p99/mean latency (ms) of single calls and the single-stream throughput (images/s)."""
    lat = np.asarray(latencies_ms, dtype=np.float64)
    p50, p90, p99 = np.percentile(lat, [50, 90, 99])
    return {
        "latency_ms_p50": float(p50),
        "latency_ms_p90": float(p90),
        "latency_ms_p99": float(p99),
        "latency_ms_mean": float(lat.mean()),
        "repetitions": int(len(lat)),
        # images per second of one stream calling back to back: batch / mean call time
        "throughput_per_s": float(batch_size * 1000.0 / lat.mean()) if lat.mean() > 0 else 0.0,
    }


def time_calls(
    call: Callable[[], object],
    seconds: float,
    warmup_s: float,
    sync: Callable[[], None] = lambda: None,
    min_reps: int = 5,
    max_reps: int = 100_000,
    warmup_reps: int = 3,
) -> np.ndarray:
    """Latency in ms of each timed call of `call()` (wall clock, synchronised after every call).

    Warm-up first (at least `warmup_reps` calls and `warmup_s` seconds: lazy allocations, JIT, caches),
    then calls until `seconds` have passed and at least `min_reps` were made.
    """
    started, done = time.perf_counter(), 0
    while done < warmup_reps or time.perf_counter() - started < warmup_s:
        call()
        sync()
        done += 1
    latencies: list[float] = []
    started = time.perf_counter()
    while len(latencies) < max_reps and (len(latencies) < min_reps or time.perf_counter() - started < seconds):
        t0 = time.perf_counter_ns()
        call()
        sync()
        latencies.append((time.perf_counter_ns() - t0) / 1e6)
    return np.asarray(latencies)


def time_calls_cuda(
    call: Callable[[], object], seconds: float, warmup_s: float, min_reps: int = 5, max_reps: int = 100_000
) -> np.ndarray:
    """Like time_calls, but each call is timed by CUDA events recorded around it after a full sync,
    so the number is GPU time of the call, not the host's launch time."""
    import torch

    time_calls(call, 0.0, warmup_s, torch.cuda.synchronize, min_reps=0)  # warm-up only
    torch.cuda.synchronize()
    latencies: list[float] = []
    started = time.perf_counter()
    while len(latencies) < max_reps and (len(latencies) < min_reps or time.perf_counter() - started < seconds):
        begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        begin.record()
        call()
        end.record()
        end.synchronize()
        latencies.append(begin.elapsed_time(end))
    return np.asarray(latencies)
