"""The machine's achievable fp32 GFLOP/s, measured once with a large GEMM (the roofline's flat part)."""

from __future__ import annotations

import time
from typing import Any


def measure_peak(payload: dict[str, Any]) -> dict[str, Any]:
    """Best GFLOP/s of an (n x n) @ (n x n) matmul over ~`seconds` (run in a bench child process); payload
    'dtype' (default float32; bfloat16 shows what AMX / tensor cores add)."""
    import torch

    device, n = payload["device"], payload.get("n", 2048)
    dtype = getattr(torch, payload.get("dtype", "float32"))
    torch.set_num_threads(payload["threads"])
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    for _ in range(3):  # warm-up: thread pool, caches, GPU clocks
        torch.mm(a, b)
    sync()
    best, reps, started = 0.0, 0, time.perf_counter()
    while reps < 3 or time.perf_counter() - started < payload.get("seconds", 2.0):
        t0 = time.perf_counter()
        torch.mm(a, b)
        sync()
        best = max(best, 2 * n**3 / (time.perf_counter() - t0) / 1e9)
        reps += 1
    return {"status": "ok", "peak_gflops": best, "gemm_n": n}
