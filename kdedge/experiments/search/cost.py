"""Stage 1 of a search, without training: every candidate built with random weights, written as the target's
file (int8 ranges calibrated on real training images), timed in its own child process by the bench
machinery (kdedge.bench.isolate + the bench worker's runners), its size, parameters and MACs recorded.
Candidates over budget are dropped here, each with the figure that dropped it.

Two shortcuts, both sound: a candidate whose conv/linear weights alone (at the target's bytes per weight)
exceed --size-mb is dropped without being written; and a family whose smaller input already misses the
latency budget is not timed at larger inputs (a larger input never runs faster on the same network).
"""

from __future__ import annotations

import importlib
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from kdedge.bench.isolate import run_isolated
from kdedge.errors import KdedgeError
from kdedge.experiments.search.cost_cache import CostCache
from kdedge.experiments.search.space import Candidate
from kdedge.experiments.search.target import Budget, Target

BYTES_PER_WEIGHT = {"int8": 1, "fp16": 2, "fp32": 4}
COST_KEYS = ("params", "macs", "size_mb", "latency_ms_p50", "latency_ms_p90", "peak_mem_mb")


@dataclass(frozen=True)
class CostSettings:
    """How candidates are measured: the target at `threads` and `batch` on this CPU, `seconds` of timed
    calls after `warmup_s`, a child killed after `timeout_s`; the data's classes and channels; the recipe's
    int8 scheme (ONNX)."""

    target: Target
    budget: Budget
    threads: int = 1
    batch: int = 1
    seconds: float = 2.0
    warmup_s: float = 0.5
    timeout_s: float = 300.0
    num_classes: int = 10
    in_channels: int = 3
    int8_scheme: str = "u8s8"


def calibration_images(recipe, side: int, data_root: str | None, load: Callable, count: int = 32) -> np.ndarray:
    """Normalised real training images (count, C, side, side) float32, a seeded sample, for the int8 ranges
    of a random-weights file (they only need real-looking inputs). recipe: the search's Recipe; load:
    prepare_data or the search's DataMemo."""
    from kdedge.data.types import normalize
    from kdedge.recipe import validate_recipe

    config = recipe.to_dict()
    config["data"] = config["data"] | {"image_size": side}
    bundle = load(validate_recipe(config, source="search calibration"), data_root)
    order = torch.randperm(len(bundle.train), generator=torch.Generator().manual_seed(recipe.seed))
    images = bundle.train.images[order[:count]]
    return normalize(images, bundle.mean, bundle.std).numpy().astype(np.float32)


def model_stats(model: nn.Module, chw: tuple[int, int, int]) -> dict[str, int]:
    """params, multiply-accumulates per image (FlopCounterMode counts 2 per MAC) and the conv / linear
    weights (the part of the parameters every file stores: batch norms are folded into the convolutions)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(torch.zeros(1, *chw))
    layers = (nn.Conv1d, nn.Conv2d, nn.Linear)
    weights = sum(m.weight.numel() for m in model.modules() if isinstance(m, layers))
    params = sum(p.numel() for p in model.parameters())
    return {"params": params, "macs": int(counter.get_total_flops()) // 2, "weights": weights}


def write_target_file(
    model: nn.Module, chw: tuple[int, int, int], calibration: np.ndarray, settings: CostSettings, folder: Path
) -> Path:
    """The candidate as the target's file in `folder`: ONNX (fp32, or int8 QDQ from it; OpenVINO runs the
    ONNX file) or the edge format's own converter (kdedge.runtime.formats names it)."""
    target = settings.target
    if target.export_format == "onnx":
        from kdedge.export.convert import export_fp32, tidy_onnx, to_int8

        fp32 = folder / "candidate.fp32.onnx"
        export_fp32(model, chw, fp32, opset=20)
        tidy_onnx(fp32)  # as `kdedge export` leaves every file
        if target.precision == "fp32":
            return fp32
        int8 = folder / "candidate.int8.onnx"
        to_int8(fp32, int8, calibration, settings.int8_scheme, folder)
        tidy_onnx(int8)
        return int8
    from kdedge.export.edge_common import ConvertJob, ExportFailed

    fmt = target.fmt
    path = folder / f"candidate.{target.precision}{fmt.suffix}"
    batch = None if fmt.dynamic_batch else settings.batch
    module, function = fmt.converter.split(":")
    getattr(importlib.import_module(module), function)(
        ConvertJob(model, chw, target.precision, calibration, path, batch)
    )
    if not path.exists():
        raise ExportFailed(f"the {fmt.name} converter wrote no file")
    return path


def file_size_mb(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / 1e6


def time_file(path: Path, chw: tuple[int, int, int], settings: CostSettings) -> dict[str, Any]:
    """Latency percentiles and peak memory of the file, measured by the bench worker in a child process."""
    payload = {
        "runtime": settings.target.runtime,
        "provider": "cpu",
        "precision": settings.target.precision,
        "device": "cpu",
        "batch_size": settings.batch,
        "threads": settings.threads,
        "seconds": settings.seconds,
        "warmup_s": settings.warmup_s,
        "input_shape": list(chw),
        "file": str(path),
        "run_path": None,
        "stage": "student",
        "eval_images": None,
        "logits_out": None,
        "format": settings.target.fmt.as_dict() if settings.target.fmt.edge else None,
    }
    return run_isolated(payload, settings.timeout_s)


def measure(candidate: Candidate, calibration: np.ndarray, settings: CostSettings) -> dict[str, Any]:
    """One candidate's cost record: its figures and `status` ('ok', 'over budget' when its weights alone
    exceed the size budget, or 'error: why' when it cannot be written or run)."""
    from kdedge.models.builders import build_model

    started = time.perf_counter()
    chw = (settings.in_channels, candidate.image_size, candidate.image_size)
    record: dict[str, Any] = {"status": "ok"}
    try:
        torch.manual_seed(0)
        model = build_model(candidate.model, settings.num_classes, chw[0], chw[1], candidate.model_kwargs).eval()
        record |= model_stats(model, chw)
        floor = record.pop("weights") * BYTES_PER_WEIGHT[settings.target.precision] / 1e6
        if settings.budget.size_mb is not None and floor > settings.budget.size_mb:
            return record | {"status": "over budget", "size_floor_mb": round(floor, 3)}
        with tempfile.TemporaryDirectory(prefix="kdedge-search-") as folder:
            path = write_target_file(model, chw, calibration, settings, Path(folder))
            record["size_mb"] = round(file_size_mb(path), 4)
            timed = time_file(path, chw, settings)
        record |= {key: timed.get(key) for key in ("latency_ms_p50", "latency_ms_p90", "peak_mem_mb")}
        record["status"] = timed["status"]
    except KdedgeError as err:
        record["status"] = f"error: {err}"
    except Exception as err:  # noqa: BLE001 - a model a converter cannot take is this candidate's status
        record["status"] = f"error: {type(err).__name__}: {' '.join(str(err).split())[:160]}"
    record["measure_seconds"] = round(time.perf_counter() - started, 2)
    record["load_avg_1m"] = round(os.getloadavg()[0], 2)
    return record


def cost_stage(
    candidates: list[Candidate],
    settings: CostSettings,
    cache: CostCache,
    calibration: Callable[[int], np.ndarray],
    check_stop: Callable[[], None],
    progress=None,
    results: dict[str, dict[str, Any]] | None = None,
) -> dict[str, dict[str, Any]]:
    """{candidate name: cost record + `from` (measured / search / shared cache) + `misses` (what it exceeds,
    [] within budget)}, candidates
    in order (family by family, smallest input first). `calibration(side)`: normalised training images
    (N, C, side, side) float32. `check_stop()` raises when a stop was asked for: a measurement that a
    Ctrl-C may have cut short is never cached. `results`: the dict to fill (a stopped stage leaves what
    it measured there)."""
    results = {} if results is None else results
    too_slow: dict[str, dict[str, Any]] = {}  # family -> the record of its smaller input that missed latency
    task = progress.add_task("cost", total=len(candidates)) if progress is not None else None
    for candidate in candidates:
        check_stop()
        if task is not None:
            progress.update(task, description=f"cost: {candidate.name}")
        record = cache.get(candidate)
        if record is None and candidate.family in too_slow and not candidate.own:
            record = _inferred_too_slow(too_slow[candidate.family], settings.budget)
        elif record is None:
            record = measure(candidate, calibration(candidate.image_size), settings) | {"from": "measured"}
            check_stop()
            if record["status"] != "over budget":  # the size floor depends on the budget: not a measurement
                cache.put(candidate, record)
        record["misses"] = _misses(record, settings.budget)
        if record["status"] == "ok" and any(m.startswith("latency") for m in record["misses"]):
            too_slow.setdefault(candidate.family, record | {"image_size": candidate.image_size})
        results[candidate.name] = record
        if task is not None:
            progress.advance(task)
    return results


def _misses(record: dict[str, Any], budget: Budget) -> list[str]:
    if "size_floor_mb" in record:
        return [f"size >= {record['size_floor_mb']:.3g} MB (its weights alone) > {budget.size_mb:g} MB"]
    if "inferred" in record:
        return [record["inferred"]]
    return budget.misses(record) if record["status"] == "ok" else []


def _inferred_too_slow(smaller: dict[str, Any], budget: Budget) -> dict[str, Any]:
    """The record of a larger input of a family whose smaller input already missed the latency budget."""
    latency = smaller[budget.latency_key]
    return {
        "status": "over budget",
        "inferred": f"latency {budget.percentile} > {latency:.3g} ms (its {smaller['image_size']} px input "
        f"already takes that) > {budget.latency_ms:g} ms",
    }
