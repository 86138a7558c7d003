"""`kdedge bench`: plan the rows, run each in its own child process, score accuracy, compare, report."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kdedge.bench.edge_targets import edge_rows, is_edge_file
from kdedge.bench.isolate import DEFAULT_ENTRY, run_isolated
from kdedge.bench.targets import BenchModel, discover, prepare_test_sets
from kdedge.errors import InputError
from kdedge.runtime.formats import file_runtimes, format_of_file


def runtime_choices() -> tuple[str, ...]:
    """torch and every runtime of the format table (kdedge.runtime.formats), read when asked."""
    return ("torch", *file_runtimes())


@dataclass(frozen=True)
class BenchOptions:
    device: str = "cpu"
    batch_sizes: tuple[int, ...] = (1, 32)
    threads: int = os.cpu_count() or 1
    seconds: float = 2.0
    warmup_s: float = 0.5
    runtimes: tuple[str, ...] = field(default_factory=runtime_choices)
    compile: bool = False
    limit: int | None = None
    data_root: str | None = None
    timeout_s: float = 600.0
    accuracy_bound: float = 0.5  # points of top-1 accuracy
    peak: bool = False


def check_options(options: BenchOptions) -> None:
    """Bad option values and a missing GPU are one clear InputError each."""
    if options.device not in ("cpu", "cuda"):
        raise InputError(f"--device: must be cpu or cuda (got '{options.device}')")
    if options.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise InputError(
                "--device cuda: no CUDA device is present (torch.cuda.is_available() is False); use --device cpu"
            )
    allowed = runtime_choices()
    unknown = [r for r in options.runtimes if r not in allowed]
    if unknown or not options.runtimes:
        raise InputError(f"--runtimes: unknown '{','.join(unknown)}'; allowed: {', '.join(allowed)}")
    if not options.batch_sizes or min(options.batch_sizes) < 1:
        raise InputError(f"--batch: batch sizes must be >= 1 (got {list(options.batch_sizes)})")
    if options.threads < 1 or options.seconds <= 0 or options.timeout_s <= 0:
        raise InputError("--threads, --seconds and --timeout must be positive")
    if options.limit is not None and options.limit < 1:
        raise InputError(f"--limit: must be >= 1 (got {options.limit})")


def _variants(model: BenchModel, options: BenchOptions) -> list[tuple]:
    """(runtime, precision, file, preset skip reason[, fixed batch]) for one model: its torch and ONNX
    rows, then its edge files' rows (kdedge.runtime.formats)."""
    out: list[tuple] = _onnx_variants(model, options)
    out += edge_rows(model.edge, options.runtimes)
    return out


def _onnx_variants(model: BenchModel, options: BenchOptions) -> list[tuple]:
    """(runtime, precision, file, preset skip reason) of the torch and ONNX rows."""
    out: list[tuple] = []
    cuda = options.device == "cuda"
    if model.run_path and "torch" in options.runtimes:
        for precision in ("fp32", "fp16") if cuda else ("fp32",):
            out.append(("torch", precision, model.weights, ""))
            if options.compile:
                out.append(("torch-compile", precision, model.weights, ""))
    for precision, file in sorted(model.onnx.items(), key=lambda kv: ("fp32", "fp16", "int8").index(kv[0])):
        if "onnxruntime" in options.runtimes:
            fp16_cpu = precision == "fp16" and not cuda
            out.append(
                (
                    "onnxruntime",
                    precision,
                    file,
                    "fp16 ONNX is for the GPU (--device cuda)" if fp16_cpu else "",
                )
            )
            if cuda:
                out.append(("onnxruntime-trt", precision, file, ""))
            elif precision == "fp32" and "onnxruntime-trt" in options.runtimes:
                out.append(("onnxruntime-trt", precision, file, "TensorRT needs a CUDA GPU (--device cuda)"))
        if "openvino" in options.runtimes and precision != "fp16":
            skip = "the OpenVINO runner runs on the CPU only" if cuda else ""
            out += [("openvino", "int8" if precision == "int8" else "fp32", file, skip)]
            if precision == "fp32":
                out.append(("openvino", "bf16", file, skip))
    return out


def plan_rows(models: list[BenchModel], options: BenchOptions, folder: Path) -> list[dict[str, Any]]:
    """One row per (model, runtime, precision, batch). The largest batch of each variant also predicts the
    test set (its logits go to a .npy in `folder`); a preset skip gives one row, not one per batch."""
    rows = []
    for index, model in enumerate(models):
        for runtime, precision, file, skip, *fixed in _variants(model, options):
            batches = [fixed[0]] if fixed and fixed[0] else sorted(set(options.batch_sizes))
            for batch_size in batches[:1] if skip else batches:
                scored = batch_size == batches[-1] and model.test_images is not None
                rows.append(
                    {
                        "model": model.label,
                        "group": model.group,
                        "run": model.run_path,  # absolute; None for bare files
                        "stage": model.stage,
                        "arch": model.arch,
                        "runtime": runtime,
                        "precision": precision,
                        "device": options.device,
                        "batch_size": batch_size,
                        "threads": options.threads,
                        "file": file,
                        "size_mb": _size_mb(file),
                        "params": model.params,
                        "flops": model.flops,
                        "dataset": model.dataset,
                        "status": f"skipped: {skip}" if skip else "",
                        "_model_index": index,
                        "_pair_key": model.pair_key,
                        "_scored": scored,
                        "_logits": str(folder / f"logits{len(rows)}.npy") if scored else None,
                    }
                )
    return rows


def _size_mb(file: str | None) -> float | None:
    """File size in MB (10^6 bytes), ONNX external data included."""
    if not file:
        return None
    path = Path(file)
    if path.is_dir():  # an .mlpackage is a folder
        return round(sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6, 3)
    extra = Path(str(path) + ".data")
    return round((path.stat().st_size + (extra.stat().st_size if extra.exists() else 0)) / 1e6, 3)


def payload_for(row: dict[str, Any], model: BenchModel, options: BenchOptions) -> dict[str, Any]:
    provider = {"onnxruntime-trt": "tensorrt"}.get(row["runtime"], options.device)
    return {
        "runtime": "onnxruntime" if row["runtime"] == "onnxruntime-trt" else row["runtime"],
        "provider": provider,
        "precision": row["precision"],
        "device": options.device,
        "batch_size": row["batch_size"],
        "threads": options.threads,
        "seconds": options.seconds,
        "warmup_s": options.warmup_s,
        "input_shape": list(model.input_shape),
        "file": row["file"],
        "run_path": model.run_path,
        "stage": model.stage,
        "eval_images": model.test_images if row["_scored"] else None,
        "logits_out": row["_logits"],
        "format": format_of_file(row["file"]).as_dict() if row["file"] and is_edge_file(row["file"]) else None,
    }


def measure_rows(rows: list[dict[str, Any]], models: list[BenchModel], options: BenchOptions, progress=None) -> None:
    """Fill every row that is not already skipped, each in its own child process."""
    task = progress.add_task("bench", total=len(rows)) if progress is not None else None
    skipped: dict[tuple, str] = {}  # a variant skipped at one batch size is skipped at all of them
    for row in rows:
        if progress is not None:
            progress.update(
                task, description=f"{row['model']} {row['runtime']} {row['precision']} b{row['batch_size']}"
            )
        if not row["status"] and _variant_key(row) in skipped:
            row["status"] = skipped[_variant_key(row)]
        if not row["status"]:
            entry = row.pop("_entry", DEFAULT_ENTRY)  # tests point a row at a crashing runner this way
            payload = payload_for(row, models[row["_model_index"]], options)
            row.update(run_isolated(payload, options.timeout_s, entry))
            if row["status"].startswith("skipped"):
                skipped[_variant_key(row)] = row["status"]
        if progress is not None:
            progress.advance(task)


def _agreements(rows: list[dict[str, Any]]) -> dict[tuple, float]:
    """Top-1 agreement of each scored variant with its model's fp32 reference on the same test images (the
    fp32 row its accuracy is compared with, kdedge.bench.deploy.REFERENCE_RUNTIMES), by variant key."""
    from kdedge.bench.deploy import REFERENCE_RUNTIMES

    logits = {
        _variant_key(r): r["_logits"]
        for r in rows
        if r["_scored"] and r["status"] == "ok" and Path(r["_logits"]).is_file()
    }
    out: dict[tuple, float] = {}
    for index in dict.fromkeys(key[0] for key in logits):
        mine = {key: file for key, file in logits.items() if key[0] == index}
        references = [
            file for runtime in REFERENCE_RUNTIMES for key, file in mine.items() if key[1:3] == (runtime, "fp32")
        ]
        if references:
            reference = np.load(references[0]).argmax(1)
            out |= {key: float((np.load(file).argmax(1) == reference).mean()) for key, file in mine.items()}
    return out


def score_rows(rows: list[dict[str, Any]], models: list[BenchModel]) -> None:
    """accuracy (QWK too for graded data) and top-1 agreement with fp32 of each scored row from its logits,
    copied to its variant's other rows."""
    from kdedge.data import is_ordinal
    from kdedge.runtime.metrics import classification_report

    scores: dict[tuple, dict] = {}
    agreements = _agreements(rows)
    for row in rows:
        if row["_scored"] and row["status"] == "ok" and Path(row["_logits"]).is_file():
            report = classification_report(np.load(row["_logits"]), models[row["_model_index"]].test_labels)
            graded = is_ordinal(row["dataset"] or "")  # APTOS, RetinaMNIST: grades in order
            scores[_variant_key(row)] = {
                "accuracy": report["accuracy"],
                "qwk": report["qwk"] if graded else None,
                "test_count": report["count"],
                "agreement_fp32": agreements.get(_variant_key(row)),
            }
    empty = {"accuracy": None, "qwk": None, "test_count": None, "agreement_fp32": None}
    for row in rows:
        row.update(scores.get(_variant_key(row), empty))
        note = models[row["_model_index"]].note
        if note and row["status"] == "ok":
            row["note"] = note


def _variant_key(row: dict[str, Any]) -> tuple:
    """One model's runtime x precision x device (its batch sizes share a skip and an accuracy); by index,
    as two runs in folders of the same name have the same label."""
    return row["_model_index"], row["runtime"], row["precision"], row["device"], row.get("file")


def run_bench(paths: list[Path], options: BenchOptions, progress=None) -> dict[str, Any]:
    """Everything `kdedge bench` reports: {'rows': [...], 'machine': {...}, 'peak_gflops': ...}."""
    from kdedge.bench.deploy import mark_deployable
    from kdedge.bench.results import add_comparisons, machine_info

    check_options(options)
    models = discover(paths)
    with tempfile.TemporaryDirectory(prefix="kdedge-bench-") as folder:
        prepare_test_sets(models, options.data_root, options.limit, Path(folder))
        rows = plan_rows(models, options, Path(folder))
        measure_rows(rows, models, options, progress)
        score_rows(rows, models)
    peak = None
    if options.peak:
        answer = run_isolated(
            {"device": options.device, "threads": options.threads},
            options.timeout_s,
            "kdedge.bench.peak:measure_peak",
        )
        peak = answer.get("peak_gflops")
    add_comparisons(rows, peak)
    mark_deployable(rows, options.accuracy_bound)
    for row in rows:
        for key in [k for k in row if k.startswith("_")]:
            del row[key]
    return {"rows": rows, "machine": machine_info(options), "peak_gflops": peak, "options": options.__dict__}
