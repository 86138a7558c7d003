"""kdedge.bench.peak: the GEMM peak measurement, in float32 and bfloat16."""

from __future__ import annotations

from kdedge.bench.peak import measure_peak


def test_gemm_peak_in_bf16_too() -> None:
    for dtype in ("float32", "bfloat16"):
        answer = measure_peak({"device": "cpu", "threads": 1, "seconds": 0.05, "n": 128, "dtype": dtype})
        assert answer["status"] == "ok" and answer["peak_gflops"] > 0
