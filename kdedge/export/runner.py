"""`kdedge export RUN`: for each stage, fp32 first (it is the reference), then fp16 / int8 from it.

Every file is built and checked in a private temp folder inside RUN/export and only then moved into
place with os.replace: a failed file is never written, and never replaces a good one. With force, the
whole export is built next to RUN/export and replaces it only when every file passed (export.staging).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import torch

from kdedge.checkpoint import RunDir, atomic_write, load_run_model
from kdedge.errors import InputError, KdedgeError, RuntimeFailure
from kdedge.export import staging
from kdedge.export.convert import export_fp32, to_fp16, to_int8
from kdedge.export.nncf_int8 import activation_scheme, nncf_version, require_nncf, to_int8_nncf
from kdedge.export.options import (
    STAGES,
    EvalData,
    Settings,
    load_eval_data,
    parse_precisions,
    resolve_settings,
    select_stages,
)
from kdedge.export.report import ExportRow, export_table, file_line
from kdedge.export.verify import accuracy, agreement, check, onnx_logits, torch_parity
from kdedge.onnx_meta import build_metadata, set_metadata
from kdedge.recipe import Recipe


def export_run(
    run_path: str | Path,
    models: str = "both",
    precisions: str | list[str] = "fp32,fp16,int8",
    opset: int | None = None,
    *,
    data_root: str | None = None,
    calibration_images: int | None = None,
    int8_scheme: str | None = None,
    int8_method: str | None = None,
    min_top1_agreement: float | None = None,
    fp32_rtol: float | None = None,
    limit: int | None = None,
    quiet: bool = False,
    force: bool = False,
) -> list[ExportRow]:
    """Export a run's models to RUN/export/<stage>.<precision>.onnx; returns one row per file.

    int8_method: "ort" (onnxruntime quantize_static, the default) or "nncf" (needs kdedge[openvino]).
    Raises RuntimeFailure (after reporting every file) when any file failed its checks; the files that
    passed are kept, a failed one is never written. force: RUN/export is replaced as a whole (no file of
    an earlier export lingers), and only when every file passed; a failed forced export changes nothing.
    """
    from kdedge.console import console

    run = RunDir(Path(run_path).resolve())  # absolute: int8 pre-processing runs in a temp working dir
    recipe = run.read_recipe()
    wanted = parse_precisions(precisions)
    settings = resolve_settings(
        recipe,
        {
            "opset": opset,
            "calibration_images": calibration_images,
            "int8_scheme": int8_scheme,
            "int8_method": int8_method,
            "min_top1_agreement": min_top1_agreement,
            "fp32_rtol": fp32_rtol,
            "limit": limit,
        },
    )
    stages = select_stages(run, recipe, models)
    if "int8" in wanted and settings.int8_method == "nncf":
        require_nncf()  # before loading data or exporting anything
    say = (lambda text: None) if quiet else (lambda text: console.print(text, markup=False, highlight=False))
    if models == "both" and len(stages) < 2:
        say(
            f"note: {run.path} has no trained {({*STAGES} - {*stages}).pop()}; exporting the {stages[0]} only"
        )
    data = load_eval_data(recipe, data_root, settings, "int8" in wanted)
    final_dir = run.path / "export"
    out_dir = staging.staging_dir(run.path) if force else final_dir
    created = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    rows: list[ExportRow] = []
    try:
        for stage in stages:
            rows += export_stage(run, recipe, stage, wanted, settings, data, say, out_dir)
        if force and all(r.status == "ok" for r in rows):
            staging.swap_in(out_dir, final_dir)
            for row in rows:
                row.path = str(final_dir / Path(row.path).name)
    finally:
        if force:
            staging.discard(out_dir)  # after a swap there is nothing left to discard
        elif created and not any(out_dir.iterdir()):
            out_dir.rmdir()  # nothing was exported: leave the run as it was
    if not quiet:
        console.print(
            export_table(rows, f"{run.path}: ONNX export (opset {settings.opset}, dynamo exporter)")
        )
    failed = [r for r in rows if r.status != "ok"]
    if failed:
        raise RuntimeFailure(
            "export failed for "
            + "; ".join(f"{r.name} ({r.status})" for r in failed)
            + (f"; {final_dir} was left as it was (--force)" if force else "; no file was written for these")
        )
    return rows


def export_stage(
    run: RunDir,
    recipe: Recipe,
    stage: str,
    precisions: list[str],
    settings: Settings,
    data: EvalData,
    say,
    out_dir: Path | None = None,
) -> list[ExportRow]:
    """fp32 (always built: the reference), then the other precisions; one ExportRow per requested file,
    published into out_dir (default RUN/export)."""
    out_dir = out_dir or run.path / "export"
    model, info = load_run_model(run, stage)
    chw = (info["in_channels"], info["image_size"], info["image_size"])
    if data.test_images.shape[1:] != chw:
        raise InputError(
            f"{run.path}: the recipe's data gives images {data.test_images.shape[1:]}, but the {stage} "
            f"was trained on {chw}"
        )
    base = {
        "model": getattr(recipe, stage).model,
        "stage": stage,
        "input_size": chw[1:],
        "in_channels": chw[0],
        "mean": info["mean"],
        "std": info["std"],
        "class_names": info["class_names"],
        "dataset": info["dataset"],
        "recipe_sha": recipe.fingerprint(),
        "opset": settings.opset,
        "exporter": "torch.onnx dynamo",
        "torch_version": torch.__version__,
    }
    rows: list[ExportRow] = []
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".export-") as folder:
        workdir = Path(folder)
        fp32 = workdir / f"{stage}.fp32.onnx"
        reference = _build(
            ExportRow(stage, "fp32"),
            lambda: export_fp32(model, chw, fp32, settings.opset),
            fp32,
            model,
            chw,
            settings,
            data,
            None,
        )
        for precision in precisions:
            if precision == "fp32":
                row = reference
            elif reference.status != "ok":
                row = ExportRow(stage, precision, status="skipped: the fp32 export it is made from failed")
            else:
                row = _build(
                    ExportRow(stage, precision),
                    _converter(precision, fp32, workdir, settings, data),
                    workdir / f"{stage}.{precision}.onnx",
                    model,
                    chw,
                    settings,
                    data,
                    reference.extra["test_logits"],
                )
            if row.status == "ok":
                meta = base | {
                    "precision": precision,
                    "test_accuracy": round(row.test_accuracy, 6),
                    "test_count": row.test_count,
                    "top1_agreement_fp32": round(row.test_agreement, 6),
                    "max_abs_diff_torch": f"{row.max_abs_diff:.3e}",
                    "max_abs_diff_fp32_test": f"{row.test_max_abs_diff:.3e}",
                }
                if precision == "int8":
                    meta |= _int8_meta(settings, len(data.calibration), workdir / f"{stage}.int8.onnx")
                row.path = str(_publish(workdir / f"{stage}.{precision}.onnx", out_dir, meta))
            say(file_line(row))
            rows.append(row)
    return rows


def _converter(precision: str, fp32: Path, workdir: Path, settings: Settings, data: EvalData):
    target = workdir / fp32.name.replace(".fp32.", f".{precision}.")
    if precision == "fp16":
        return lambda: to_fp16(fp32, target)
    if settings.int8_method == "nncf":
        return lambda: to_int8_nncf(fp32, target, data.calibration)
    return lambda: to_int8(fp32, target, data.calibration, settings.int8_scheme, workdir)


def _int8_meta(settings: Settings, calibration_images: int, built: Path) -> dict:
    """How an int8 file was made: quantiser and its version, activation/weight types, calibration size."""
    if settings.int8_method == "nncf":
        method, version, scheme = "nncf", nncf_version(), activation_scheme(built)
    else:
        import onnxruntime

        method, version, scheme = "ort", onnxruntime.__version__, settings.int8_scheme
    return {
        "int8_method": method,
        "int8_quantizer": f"{'nncf' if method == 'nncf' else 'onnxruntime'} {version}",
        "int8_scheme": scheme,
        "calibration_images": calibration_images,
    }


def _build(
    row: ExportRow,
    convert,
    path: Path,
    model,
    chw,
    settings: Settings,
    data: EvalData,
    fp32_test_logits: np.ndarray | None,
) -> ExportRow:
    """Convert, check, compare; fill `row` (status explains a failure; the temp file stays private)."""
    started = time.perf_counter()
    try:
        convert()
        check(path)
        parity = torch_parity(model, path, chw)
        logits = onnx_logits(path, data.test_images)
        reference = logits if fp32_test_logits is None else fp32_test_logits
        row.max_abs_diff, row.rel_diff, row.random_agreement = (
            parity.max_abs_diff,
            parity.rel_diff,
            parity.agreement,
        )
        row.test_accuracy, row.test_agreement = (
            accuracy(logits, data.test_labels),
            agreement(logits, reference),
        )
        row.test_count, row.size_mb = len(logits), path.stat().st_size / 1e6
        row.test_max_abs_diff = float(np.abs(logits - reference).max()) if len(logits) else None
        row.extra["test_logits"] = logits
        if row.precision == "fp32" and not parity.rel_diff <= settings.fp32_rtol:
            row.status = (
                f"max |onnx - torch| / max |torch| = {parity.rel_diff:.1e} > fp32_rtol {settings.fp32_rtol:g}"
            )
        elif row.precision != "fp32" and not row.test_agreement >= settings.min_top1_agreement:
            row.status = (
                f"top-1 agreement with fp32 on {row.test_count} test images {row.test_agreement:.4f} < "
                f"min_top1_agreement {settings.min_top1_agreement:g}"
            )
    except KdedgeError as err:
        row.status = str(err)
    row.seconds = time.perf_counter() - started
    return row


def _publish(built: Path, out_dir: Path, meta_values: dict) -> Path:
    """Stamp the metadata and move the checked file into RUN/export atomically."""
    model = onnx.load(str(built))
    set_metadata(model, build_metadata(meta_values))
    final = out_dir / built.name
    atomic_write(final, lambda tmp: onnx.save(model, str(tmp)))
    os.chmod(final, staging.shared_mode(0o666))  # mkstemp made it owner-only; artefacts are shared
    return final
