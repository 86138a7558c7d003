"""`kdedge export RUN --format executorch,litert,coreml`: the non-ONNX files of one stage, each converted
and checked in a private temp folder, then published (sidecar metadata first, then the file, each
atomically) only when it passed, with the same bounds as the ONNX files:

- fp32: max |file - torch| / max |torch| <= fp32_rtol on random inputs at batch 1 and 7 (dynamic-batch
  formats) or at the file's own batch (fixed-batch formats, one file per --batch size);
- fp16 / int8: top-1 agreement with PyTorch fp32 >= min_top1_agreement on the real test images;
- every file: accuracy on the real test images, measured on the file itself, goes into its metadata.
Core ML cannot run off macOS: its check is structural (coreml_convert.structure) and says so.
"""

from __future__ import annotations

import importlib
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from kdedge.errors import KdedgeError
from kdedge.export.edge_common import ConvertJob, ExportFailed
from kdedge.export.edge_publish import publish_edge
from kdedge.export.options import EvalData, Settings
from kdedge.export.table import ExportRow
from kdedge.export.verify import accuracy, agreement
from kdedge.runtime.formats import Format

PARITY_BATCHES = (1, 7)


@dataclass(frozen=True)
class EdgeStage:
    """One stage to write edge files for: its model (eval, CPU), input (C, H, W), metadata shared by every
    file, the PyTorch logits of the test images (the fp16/int8 agreement reference) and the checks' data."""

    stage: str
    model: torch.nn.Module
    chw: tuple[int, int, int]
    meta: dict
    torch_test_logits: np.ndarray
    settings: Settings
    data: EvalData


def file_name(stage: str, fmt: Format, precision: str, batch: int | None) -> str:
    """student.int8.pte; fixed-batch formats name their batch: student.int8.b1.tflite."""
    middle = f".b{batch}" if batch is not None else ""
    return f"{stage}.{precision}{middle}{fmt.suffix}"


def export_format(
    job: EdgeStage, fmt: Format, precisions: list[str], batches: list[int], out_dir: Path, say
) -> list[ExportRow]:
    """Every (precision, batch) file of one format for one stage; one ExportRow each."""
    rows = []
    for batch in [None] if fmt.dynamic_batch else batches:
        for precision in precisions:
            row = _build(job, fmt, precision, batch, out_dir)
            say(_line(row))
            rows.append(row)
    return rows


def _build(job: EdgeStage, fmt: Format, precision: str, batch: int | None, out_dir: Path) -> ExportRow:
    """Convert, check, measure, publish one file; the row's status says what failed, if anything."""
    row = ExportRow(job.stage, precision, fmt=fmt.name, batch=batch)
    name = file_name(job.stage, fmt, precision, batch)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".export-") as folder:
        built = Path(folder) / name
        try:
            _convert(fmt, ConvertJob(job.model, job.chw, precision, job.data.calibration, built, batch))
            row.size_mb = _size_mb(built)
            _check(job, fmt, row, built)
            if row.status == "ok":
                row.path = str(publish_edge(built, out_dir, fmt, _file_meta(job, row)))
        except ExportFailed as err:
            row.status = f"export failed: {err}"
        except KdedgeError as err:
            row.status = f"exported but failed its check: {err}"
    row.seconds = time.perf_counter() - started
    return row


def _call(reference: str, *args: object) -> object:
    """Call the function a table entry names as "module:function"."""
    module, function = reference.split(":")
    return getattr(importlib.import_module(module), function)(*args)


def _convert(fmt: Format, job: ConvertJob) -> None:
    _call(fmt.converter, job)
    if not job.path.exists():
        raise ExportFailed(f"the {fmt.name} converter wrote no file")


def _size_mb(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / 1e6


def _check(job: EdgeStage, fmt: Format, row: ExportRow, path: Path) -> None:
    """Fill `row` from the file; set its status when a bound is missed."""
    if fmt.run_skip_reason():  # Core ML off macOS: its structure only, where the table names a check of it
        if fmt.structure:
            row.extra["structure"] = _call(fmt.structure, path, job.chw)
            row.extra["check"] = f"structural only ({fmt.run_skip_reason()})"
        else:
            row.extra["check"] = f"not checked: {fmt.run_skip_reason()}"
        row.status = "ok"
        return
    from kdedge.runtime.edge_runners import open_runner

    runner = open_runner(path, threads=torch.get_num_threads(), batch_size=row.batch)
    if getattr(runner, "max_batch", None):  # a .pte's planned batch bound: what one call of the file takes
        row.extra["max_batch"] = runner.max_batch
    _parity(job, runner, row)
    logits = runner.predict(job.data.test_images)
    row.test_accuracy = accuracy(logits, job.data.test_labels)
    row.test_agreement = agreement(logits, job.torch_test_logits)
    row.test_max_abs_diff = float(np.abs(logits - job.torch_test_logits).max()) if len(logits) else None
    row.test_count = len(logits)
    settings = job.settings
    if row.precision == "fp32" and not row.rel_diff <= settings.fp32_rtol:
        row.status = f"max |file - torch| / max |torch| {row.rel_diff:.1e} > fp32_rtol {settings.fp32_rtol:g}"
    elif row.precision != "fp32" and not row.test_agreement >= settings.min_top1_agreement:
        row.status = (
            f"top-1 agreement with PyTorch fp32 on {row.test_count} test images {row.test_agreement:.4f} "
            f"< min_top1_agreement {settings.min_top1_agreement:g}"
        )
    if row.status != "ok":
        row.status = f"exported but failed its check: {row.status}"


@torch.inference_mode()
def _parity(job: EdgeStage, runner, row: ExportRow, seed: int = 1234) -> None:
    """The file vs PyTorch on fresh N(0, 1) inputs: batches 1 and 7 (dynamic) or the file's batch."""
    generator = torch.Generator().manual_seed(seed)
    diffs, scales, agree, total = [], [], 0, 0
    for batch in PARITY_BATCHES if row.batch is None else (row.batch,):
        images = torch.randn(batch, *job.chw, generator=generator)
        expected = job.model(images).float().numpy()
        got = runner.predict(images.numpy())
        if got.shape != expected.shape:
            raise KdedgeError(f"logits shape {got.shape} at batch {batch}, PyTorch gives {expected.shape}")
        diffs.append(float(np.abs(got - expected).max()))
        scales.append(float(np.abs(expected).max()))
        agree += int((got.argmax(1) == expected.argmax(1)).sum())
        total += batch
    row.max_abs_diff = max(diffs)
    row.rel_diff = row.max_abs_diff / max(max(scales), 1e-12)
    row.random_agreement = agree / total


def _file_meta(job: EdgeStage, row: ExportRow) -> dict:
    """The stage's metadata plus what was measured on this file."""
    meta = job.meta | {"precision": row.precision, "format": row.fmt}
    if row.batch is not None:
        meta["batch_size"] = row.batch
    if row.test_accuracy is not None:
        meta |= {
            "test_accuracy": round(row.test_accuracy, 6),
            "test_count": row.test_count,
            "top1_agreement_torch": round(row.test_agreement, 6),
            "max_abs_diff_torch": f"{row.max_abs_diff:.3e}",
        }
    if row.precision == "int8":
        meta["calibration_images"] = len(job.data.calibration)
    if "check" in row.extra:
        meta["check"] = row.extra["check"]
    if "max_batch" in row.extra:
        meta["max_batch_per_call"] = row.extra["max_batch"]
    return meta


def _line(row: ExportRow) -> str:
    """One progress line per file."""
    label = Path(row.path).name if row.path else f"{row.name} ({row.fmt})"
    if row.status != "ok":
        return f"{label}: {row.status}"
    if row.test_accuracy is None:
        return f"{label}: {row.extra.get('check', 'ok')}; {row.size_mb:.2f} MB in {row.seconds:.1f} s"
    where = "batches 1 and 7" if row.batch is None else f"its batch {row.batch}"
    return (
        f"{label}: max |file - torch| {row.max_abs_diff:.2e} (rel {row.rel_diff:.1e}) on {where}; test acc "
        f"{100 * row.test_accuracy:.2f}% (n={row.test_count}), agreement with torch "
        f"{100 * row.test_agreement:.2f}%; {row.size_mb:.2f} MB in {row.seconds:.1f} s"
    )


def remove_tree(path: Path) -> None:
    """Remove a file or folder (an .mlpackage is a folder)."""
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def exporter(fmt: Format) -> str:
    """'litert-torch 0.8.0': the distribution the table names for the format's converter, and its version."""
    from importlib.metadata import PackageNotFoundError, version

    package = fmt.exporter or fmt.name
    try:
        return f"{package} {version(package)}"
    except PackageNotFoundError:
        return package


def export_edge_stage(
    run,
    recipe,
    stage: str,
    formats: list[Format],
    precisions: list[str],
    batches: list[int],
    settings: Settings,
    data: EvalData,
    say,
    out_dir: Path,
) -> list[ExportRow]:
    """Every edge format's files of one stage (run: RunDir; recipe: Recipe), published into out_dir.
    A precision the format cannot write is a skipped row, not an error."""
    from kdedge.export.publish import stage_metadata

    model, info = run.load_model(stage)
    chw = (info["in_channels"], info["image_size"], info["image_size"])
    reference = _torch_logits(model, data.test_images)
    rows: list[ExportRow] = []
    for fmt in formats:
        meta = stage_metadata(recipe, stage, info, chw, settings) | {"opset": None, "exporter": exporter(fmt)}
        job = EdgeStage(stage, model, chw, meta, reference, settings, data)
        usable = [p for p in precisions if p in fmt.precisions]
        for precision in [p for p in precisions if p not in fmt.precisions]:
            rows.append(
                ExportRow(
                    stage,
                    precision,
                    status=f"skipped: {fmt.name} writes {', '.join(fmt.precisions)} only",
                    fmt=fmt.name,
                )
            )
        rows += export_format(job, fmt, usable, batches, out_dir, say)
    return rows


@torch.inference_mode()
def _torch_logits(model: torch.nn.Module, images: np.ndarray) -> np.ndarray:
    """PyTorch logits (N, K) float32 of normalised images (N, C, H, W), in chunks of 256."""
    if not len(images):
        return np.zeros((0, 0), np.float32)
    chunks = [model(torch.from_numpy(np.ascontiguousarray(images[i : i + 256]))) for i in range(0, len(images), 256)]
    return torch.cat(chunks).float().numpy()
