"""The child side of a bench row: `python -m kdedge.bench.worker MODULE:FUNCTION request.json answer.json`.

Only kdedge's own bench functions are ever named here (the parent builds the command); the payload is
plain JSON. A runner that is unavailable raises Skip -> `skipped: why`; any other exception becomes
`error: one line`. Crashes (signals) never reach this code: the parent sees the exit status instead.
"""

from __future__ import annotations

import importlib
import json
import os
import resource
import sys
from pathlib import Path
from typing import Any

import numpy as np

from kdedge.bench.runners import Skip, make_runner, payload_format, preload
from kdedge.bench.timing import summarize, time_calls, time_calls_cuda


def rss_mb() -> float:
    """Current resident set size of this process in MiB."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    """High-water RSS of this process in MiB. VmHWM, not getrusage's ru_maxrss: ru_maxrss survives exec,
    so a child started by a big parent would report the parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux: best effort


def predict_all(runner, images: np.ndarray, batch_size: int) -> np.ndarray:
    """Logits (N, num_classes) of images (N, C, H, W) float32, batch by batch; the last batch is padded to
    the full size so runtimes compiled for a static batch (OpenVINO here) take every call."""
    outputs = []
    for start in range(0, len(images), batch_size):
        batch = np.ascontiguousarray(images[start : start + batch_size], dtype=np.float32)
        count = len(batch)
        if count < batch_size:
            batch = np.concatenate([batch, np.repeat(batch[-1:], batch_size - count, axis=0)])
        outputs.append(runner.predict(batch)[:count])
    return np.concatenate(outputs).astype(np.float32)


def measure_row(payload: dict[str, Any]) -> dict[str, Any]:
    """Build the row's runner, time it on a fixed random batch, then (if asked) predict the test set.

    payload: runtime, precision, device, batch_size, threads, seconds, warmup_s, input_shape (C, H, W),
    file / run_path + stage, eval_images (.npy of (N, C, H, W) float32) and logits_out (.npy path).
    """
    preload(payload["runtime"], payload_format(payload))
    baseline_mb = rss_mb()
    runner = make_runner(payload)
    shape = (payload["batch_size"], *payload["input_shape"])
    batch = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    call = runner.bind(batch)
    if payload["device"] == "cuda":
        latencies = time_calls_cuda(call, payload["seconds"], payload["warmup_s"])
        import torch

        peak_mb = torch.cuda.max_memory_allocated() / 2**20
    else:
        latencies = time_calls(call, payload["seconds"], payload["warmup_s"], runner.sync)
        peak_mb = peak_rss_mb() - baseline_mb  # model + runtime buffers + one batch, above the bare process
    result = summarize(latencies, payload["batch_size"]) | {"peak_mem_mb": round(peak_mb, 1), "status": "ok"}
    result["detail"] = runner.detail
    if payload.get("eval_images"):
        images = np.load(payload["eval_images"], mmap_mode="r")
        np.save(payload["logits_out"], predict_all(runner, images, payload["batch_size"]))
    return result


def main(argv: list[str]) -> int:
    entry, request, answer = argv
    module_name, function_name = entry.split(":")
    function = getattr(importlib.import_module(module_name), function_name)
    payload = json.loads(Path(request).read_text())
    try:
        result = function(payload)
    except Skip as why:
        result = {"status": f"skipped: {why}"}
    except Exception as err:  # noqa: BLE001 - every failure of a runtime becomes this row's status
        message = " ".join(str(err).split())[:200] or "(no message)"
        result = {"status": f"error: {type(err).__name__}: {message}"}
    Path(answer).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
