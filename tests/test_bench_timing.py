"""Bench internals without real models: timing statistics, row isolation, deployable choice."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from bench_helpers import SleepyRunner

from kdedge.bench.deploy import choose, mark_deployable
from kdedge.bench.isolate import run_isolated
from kdedge.bench.timing import summarize, time_calls

TESTS = str(Path(__file__).parent)


def test_summarize_percentiles_and_throughput_are_exact():
    stats = summarize(np.arange(1, 101, dtype=float), batch_size=4)
    assert stats["latency_ms_p50"] == pytest.approx(50.5)
    assert stats["latency_ms_p90"] == pytest.approx(90.1)
    assert stats["latency_ms_p99"] == pytest.approx(99.01)
    assert stats["throughput_per_s"] == pytest.approx(4 * 1000 / 50.5)
    assert stats["repetitions"] == 100


def test_time_calls_on_a_runner_with_known_delays():
    """80% of calls sleep 30 ms, 20% sleep 120 ms; the gap is wide so a busy CI machine's scheduling
    delays (tens of ms measured here under load) cannot move the median out of the 30 ms group."""
    runner = SleepyRunner([30, 30, 30, 30, 30, 30, 30, 30, 120, 120])
    call = runner.bind(np.zeros((1, 1, 4, 4), dtype=np.float32))
    started = time.perf_counter()
    latencies = time_calls(call, seconds=0.8, warmup_s=0.05, sync=runner.sync, min_reps=10)
    elapsed = time.perf_counter() - started
    stats = summarize(latencies, batch_size=1)
    assert elapsed >= 0.8  # time-based: at least `seconds` of timed calls after the warm-up
    assert stats["repetitions"] >= 10  # any 10 consecutive calls hold two 120 ms ones
    assert 30.0 <= stats["latency_ms_p50"] < 120.0
    assert stats["latency_ms_p99"] >= 120.0 and stats["latency_ms_p50"] <= stats["latency_ms_p90"]
    assert runner.calls - len(latencies) >= 3  # the warm-up calls are made but not timed


def test_slow_calls_still_get_the_minimum_repetitions():
    runner = SleepyRunner([30])
    latencies = time_calls(runner.bind(np.zeros((1, 1, 2, 2), np.float32)), seconds=0.01, warmup_s=0.0, min_reps=5)
    assert len(latencies) == 5 and latencies.min() >= 30


def test_a_crashing_child_becomes_an_error_status(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", TESTS)
    result = run_isolated({"threads": 1}, timeout_s=60, entry="bench_children:abort_row")
    assert result["status"].startswith("error: child process killed by SIGABRT")


def test_a_hanging_child_is_killed_at_the_timeout(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", TESTS)
    started = time.perf_counter()
    result = run_isolated({"threads": 1}, timeout_s=1, entry="bench_children:hang_row")
    assert result["status"] == "error: timed out after 1 s (child killed)"
    assert time.perf_counter() - started < 20


def test_a_failing_runner_is_an_error_row_and_a_missing_one_is_skipped(tmp_path):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a protobuf")
    payload = {
        "runtime": "onnxruntime",
        "provider": "cpu",
        "precision": "fp32",
        "device": "cpu",
        "batch_size": 1,
        "threads": 1,
        "seconds": 0.1,
        "warmup_s": 0.0,
        "input_shape": [1, 4, 4],
        "file": str(broken),
    }
    status = run_isolated(payload, timeout_s=60)["status"]
    assert status.startswith("error: ") and "\n" not in status
    unknown = run_isolated(payload | {"runtime": "tvm"}, timeout_s=60)["status"]
    assert unknown.startswith("skipped: unknown runtime 'tvm'")


def _row(runtime: str, precision: str, batch: int, latency: float, accuracy: float) -> dict:
    return {
        "model": "run/student",
        "device": "cpu",
        "runtime": runtime,
        "precision": precision,
        "status": "ok",
        "batch_size": batch,
        "latency_ms_p50": latency,
        "accuracy": accuracy,
        "agreement_fp32": 0.99,  # every file agrees with fp32 (tests/test_bench_deploy.py: one that does not)
    }


def test_deployable_is_the_fastest_file_within_the_accuracy_bound():
    rows = [
        _row("torch", "fp32", 1, 5.0, 0.900),
        _row("onnxruntime", "fp32", 1, 4.0, 0.900),
        _row("onnxruntime", "int8", 1, 2.0, 0.897),
        _row("openvino", "int8", 1, 1.0, 0.880),
        _row("onnxruntime", "int8", 32, 0.5, 0.897),
    ]
    assert (choose(rows, 0.5)["runtime"], choose(rows, 0.5)["precision"]) == ("onnxruntime", "int8")
    assert choose(rows, 0.2)["precision"] == "fp32"  # int8 lost 0.3 points: outside a 0.2 bound
    assert choose(rows, 2.5)["runtime"] == "openvino"
    mark_deployable(rows, 0.5)
    assert [r["deploy"] for r in rows] == [False, False, True, False, True]
    no_accuracy = [dict(r, accuracy=None) for r in rows]
    assert choose(no_accuracy, 0.5) is None


def test_onnx_flops_and_params_match_torch_for_a_conv_net(tmp_path):
    import torch
    from bench_helpers import export_onnx

    from kdedge.bench.onnx_info import graph_stats
    from kdedge.bench.targets import torch_stats

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(8, 8, 3, groups=4, stride=2),
        torch.nn.Flatten(),
        torch.nn.Linear(8 * 7 * 7, 5),
    ).eval()
    file = export_onnx(model, tmp_path / "conv.onnx", (3, 16, 16), {})
    assert graph_stats(file, (3, 16, 16)) == torch_stats(model, (3, 16, 16))


def test_scores_copy_to_every_batch_and_qwk_only_for_aptos(tmp_path):
    from kdedge.bench.run import score_rows
    from kdedge.bench.targets import BenchModel
    from kdedge.runtime.metrics import quadratic_weighted_kappa

    labels = np.array([0, 1, 2, 3, 4, 2, 1, 0])
    logits = np.eye(5, dtype=np.float32)[[0, 1, 2, 4, 4, 1, 1, 0]]  # 6 of 8 right
    np.save(tmp_path / "logits.npy", logits)
    models = [
        BenchModel("g", "student", "m", (3, 8, 8), "aptos", test_labels=labels),
        BenchModel("h", "student", "m", (3, 8, 8), "cifar10", test_labels=labels),
    ]
    rows = []
    for index, dataset in enumerate(("aptos", "cifar10")):
        for scored in (False, True):  # batch 1 (not scored) and batch 32 (scored) of one variant
            base = {"model": f"{dataset}/student", "runtime": "ort", "precision": "int8", "device": "cpu"}
            rows.append(
                base
                | {
                    "status": "ok",
                    "dataset": dataset,
                    "_model_index": index,
                    "_scored": scored,
                    "_logits": str(tmp_path / "logits.npy"),
                }
            )
    score_rows(rows, models)
    assert [r["accuracy"] for r in rows] == [0.75] * 4
    expected_qwk = quadratic_weighted_kappa(logits.argmax(1), labels, 5)
    assert [r["qwk"] for r in rows] == [expected_qwk, expected_qwk, None, None]


def test_peak_gemm_reports_a_positive_rate_even_when_warm_up_is_slow():
    from kdedge.bench.peak import measure_peak

    result = measure_peak({"device": "cpu", "threads": 1, "n": 256, "seconds": 0.0})
    assert result["status"] == "ok" and result["peak_gflops"] > 0
