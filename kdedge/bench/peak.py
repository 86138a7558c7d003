"""The machine's achievable GEMM GFLOP/s (the roofline's flat part), measured over a few square sizes."""

from __future__ import annotations

import time
from typing import Any

# Square GEMM sides tried by default: one size alone under-reads some CPUs (on a 2-core AVX-512 Xeon,
# 4096^3 ran at 158 GFLOP/s one-threaded where 512..2048 reached 178) and a GPU needs a large one.
DEFAULT_SIDES = {"cpu": (512, 1024, 2048), "cuda": (2048, 4096, 8192)}


def measure_peak(payload: dict[str, Any]) -> dict[str, Any]:
    """Best GFLOP/s of an (n x n) @ (n x n) matmul over ~`seconds` in all, for n in payload 'n' (one side)
    or the device's DEFAULT_SIDES (run in a bench child process); payload 'dtype' (default float32;
    bfloat16 shows what AMX / tensor cores add). Returns peak_gflops and the side that reached it."""
    import torch

    device = payload["device"]
    sides = [payload["n"]] if "n" in payload else list(DEFAULT_SIDES.get(device, DEFAULT_SIDES["cpu"]))
    dtype = getattr(torch, payload.get("dtype", "float32"))
    torch.set_num_threads(payload["threads"])
    seconds = payload.get("seconds", 2.0) / len(sides)
    best = {n: _best_gflops(torch, n, device, dtype, seconds) for n in sides}
    side = max(best, key=best.__getitem__)
    by_side = {str(n): round(gflops, 1) for n, gflops in best.items()}
    return {"status": "ok", "peak_gflops": best[side], "gemm_n": side, "by_side": by_side}


def _best_gflops(torch: Any, n: int, device: str, dtype: Any, seconds: float) -> float:
    """The fastest of at least 3 timed (n x n) matmuls in `seconds`, after 3 warm-up ones."""
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    for _ in range(3):  # warm-up: thread pool, caches, GPU clocks
        torch.mm(a, b)
    sync()
    best, reps, started = 0.0, 0, time.perf_counter()
    while reps < 3 or time.perf_counter() - started < seconds:
        t0 = time.perf_counter()
        torch.mm(a, b)
        sync()
        best = max(best, 2 * n**3 / (time.perf_counter() - t0) / 1e9)
        reps += 1
    return best
