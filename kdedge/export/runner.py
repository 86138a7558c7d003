"""`kdedge export RUN`: for each stage, fp32 first (it is the reference), then fp16 / int8 from it.

Every file is built and checked in a private temp folder inside RUN/export and only then moved into
place with os.replace: a failed file is never written, and never replaces a good one. With force, the
whole export is built next to RUN/export and replaces it only when every file passed (export.staging).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kdedge.errors import InputError, KdedgeError
from kdedge.export import staging
from kdedge.export.convert import export_fp32, tidy_onnx, to_fp16, to_int8
from kdedge.export.edge import export_edge_stage
from kdedge.export.int8_rescue import MORE_CALIBRATION, Rescue, try_rescues
from kdedge.export.nncf_int8 import require_nncf, to_int8_nncf
from kdedge.export.options import (
    STAGES,
    EvalData,
    Request,
    Settings,
    load_eval_data,
)
from kdedge.export.outcome import ExportFailed, passed, report, threshold_failure
from kdedge.export.plan import FormatPlan, plan_formats
from kdedge.export.publish import file_metadata, publish, stage_metadata
from kdedge.export.table import ExportRow, file_line
from kdedge.export.verify import accuracy, agreement, check, onnx_logits, torch_parity
from kdedge.files.fsguard import disk_full_as_error
from kdedge.files.rundir import RunDir, remembered_data_root
from kdedge.recipe import Recipe

Say = Callable[[str], None]
__all__ = ["ExportFailed", "export_run", "export_stage"]


def export_run(
    request: Request,
    *,
    data_root: str | None = None,
    quiet: bool = False,
    force: bool = False,
    wide: bool = False,
) -> list[ExportRow]:
    """Export a checked request's models (kdedge.export.options.check_request) to
    RUN/export/<stage>.<precision>.<suffix>; returns one row per file.

    The request's settings.int8_method: "ort" (onnxruntime quantize_static, the default) or "nncf" (needs
    kdedge-distill[openvino], said here before any data is loaded). Its plan: the formats (openvino /
    tensorrt run the ONNX files) and the batch sizes of fixed-batch formats (LiteRT), one file each.
    Raises ExportFailed (a RuntimeFailure holding every row; after reporting every file) when any file
    failed its checks; the files that passed are kept, a failed one is never written. force: RUN/export is
    replaced as a whole (no file of an earlier export lingers), and only when every file passed; a failed
    forced export changes nothing.
    """
    run, recipe, wanted, settings = request.run, request.recipe, request.wanted, request.settings
    say = _printer(quiet)
    stages = _stages_to_export(run, request.models, request.stages, wanted, settings, say)
    root = remembered_data_root(run.read_summary(), data_root)  # the run's own data, without KDEDGE_DATA
    data = load_eval_data(recipe, root, settings, "int8" in wanted)
    rows = _export_stages(run, recipe, stages, wanted, settings, data, say, force, request.plan)
    report(rows, run.path, settings.opset, quiet, force, wide)
    return rows


def _printer(quiet: bool) -> Say:
    """How progress lines are shown: plain text on the console, or nowhere when quiet."""
    from kdedge.ui.console import console

    if quiet:
        return lambda text: None
    return lambda text: console.print(text, markup=False, highlight=False)


def _stages_to_export(
    run: RunDir, models: str, stages: list[str], wanted: list[str], settings: Settings, say: Say
) -> list[str]:
    """The trained stages that `models` asks for (check_request chose them). A missing NNCF fails here,
    before any data is loaded or anything exported; "both" with one stage trained says so and goes on."""
    if "int8" in wanted and settings.int8_method == "nncf":
        require_nncf()
    if models == "both" and len(stages) < 2:
        say(f"note: {run.path} has no trained {({*STAGES} - {*stages}).pop()}; exporting the {stages[0]} only")
    return stages


def _export_stages(
    run: RunDir,
    recipe: Recipe,
    stages: list[str],
    wanted: list[str],
    settings: Settings,
    data: EvalData,
    say: Say,
    force: bool,
    plan: FormatPlan | None = None,
) -> list[ExportRow]:
    """Every stage's files, published into RUN/export; with force into a staging folder that replaces
    RUN/export only when every file passed (the rows' paths then point into RUN/export)."""
    final_dir = run.path / "export"
    rows: list[ExportRow] = []
    with staging.export_folder(run.path, force) as out_dir:
        plan = plan or plan_formats("onnx", "1")
        for stage in stages:
            if plan.onnx:
                rows += export_stage(run, recipe, stage, wanted, settings, data, say, out_dir)
            if plan.edge:
                rows += export_edge_stage(
                    run, recipe, stage, plan.edge, wanted, plan.batches, settings, data, say, out_dir
                )
        if force and all(passed(r) for r in rows):
            staging.swap_in(out_dir, final_dir)
            for row in rows:
                row.path = str(final_dir / Path(row.path).name)
    return rows


@dataclass(frozen=True)
class _StageBuild:
    """What every file of one stage is built from and checked against, and the private folder it is
    built in (a temp folder inside the output folder: the final move is a rename)."""

    stage: str
    model: torch.nn.Module
    chw: tuple[int, int, int]
    settings: Settings
    data: EvalData
    workdir: Path

    def file(self, precision: str) -> Path:
        """The file of one precision in the private folder: <stage>.<precision>.onnx."""
        return self.workdir / f"{self.stage}.{precision}.onnx"


def export_stage(
    run: RunDir,
    recipe: Recipe,
    stage: str,
    precisions: list[str],
    settings: Settings,
    data: EvalData,
    say: Say,
    out_dir: Path | None = None,
) -> list[ExportRow]:
    """fp32 (always built: the reference), then the other precisions; one ExportRow per requested file,
    published into out_dir (default RUN/export)."""
    out_dir = out_dir or run.path / "export"
    model, info = run.load_model(stage)
    chw = _input_shape(run, stage, info, data)
    stage_meta = stage_metadata(recipe, stage, info, chw, settings)
    rows: list[ExportRow] = []
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".export-") as folder:
        job = _StageBuild(stage, model, chw, settings, data, Path(folder))
        fp32 = job.file("fp32")
        reference = _build(job, ExportRow(stage, "fp32"), lambda: export_fp32(model, chw, fp32, settings.opset))
        for precision in precisions:
            row = _precision_row(job, precision, reference)
            if row.status == "ok":
                count = row.extra.get("calibration_images", len(data.calibration))
                meta = file_metadata(stage_meta, row, job.file(precision), settings, count)
                row.path = str(publish(job.file(precision), out_dir, meta))
            say(file_line(row))
            rows.append(row)
    return rows


def _input_shape(run: RunDir, stage: str, info: dict[str, Any], data: EvalData) -> tuple[int, int, int]:
    """(C, H, W) the stage was trained on; InputError when the recipe's data gives other images."""
    chw = (info["in_channels"], info["image_size"], info["image_size"])
    if data.test_images.shape[1:] != chw:
        raise InputError(
            f"{run.path}: the recipe's data gives images {data.test_images.shape[1:]}, but the {stage} "
            f"was trained on {chw}"
        )
    return chw


def _precision_row(job: _StageBuild, precision: str, reference: ExportRow) -> ExportRow:
    """The row of one requested precision: fp32 is the reference itself; the others are converted from
    the fp32 file and compared with it, or skipped when it failed."""
    if precision == "fp32":
        return reference
    if reference.status != "ok":
        return ExportRow(job.stage, precision, status="skipped: the fp32 export it is made from failed")
    convert = _converter(precision, job.file("fp32"), job.workdir, job.settings, job.data)
    row = _build(job, ExportRow(job.stage, precision), convert, reference.extra["test_logits"])
    if precision == "int8" and job.settings.int8_method != "nncf" and "top-1 agreement" in row.status:
        return _rescue_int8(job, row, reference.extra["test_logits"])
    return row


def _rescue_int8(job: _StageBuild, failed: ExportRow, fp32_test_logits: np.ndarray) -> ExportRow:
    """Quantise again as kdedge.export.int8_rescue says until a file meets the agreement bound: that
    file's row (extra["int8_rescue"]: which rescue), or `failed` with what each rescue reached."""
    tries: dict[str, ExportRow] = {}

    def attempt(rescue: Rescue) -> tuple[bool, float]:
        images = job.data.calibration
        if rescue.more_images and job.data.more_calibration is not None:
            images = job.data.more_calibration(MORE_CALIBRATION * len(images))
        fp32, target, scheme = job.file("fp32"), job.file("int8"), job.settings.int8_scheme
        convert = lambda: to_int8(fp32, target, images, scheme, job.workdir, rescue)  # noqa: E731
        row = tries[rescue.name] = _build(job, ExportRow(job.stage, "int8"), convert, fp32_test_logits)
        row.extra["calibration_images"] = len(images)
        return row.status == "ok", row.test_agreement or 0.0

    rescue, tried = try_rescues(attempt)
    seconds = failed.seconds + sum(row.seconds for row in tries.values())
    if rescue is not None:
        row = tries[rescue.name]
        row.extra |= {
            "int8_rescue": rescue.name,
            "rescue_note": f"{failed.test_agreement:.4f} as quantised first; {rescue.says}: {row.test_agreement:.4f}",
        }
        row.seconds = seconds
        return row
    failed.status += f"; kdedge's int8 rescues reached {', '.join(tried)}"
    failed.extra["best_agreement"] = max((r.test_agreement or 0.0) for r in tries.values())
    failed.seconds = seconds
    return failed


def _converter(precision: str, fp32: Path, workdir: Path, settings: Settings, data: EvalData) -> Callable[[], Any]:
    """A call that writes the fp16 / int8 file (next to `fp32`, in workdir) from the fp32 one."""
    target = workdir / fp32.name.replace(".fp32.", f".{precision}.")
    if precision == "fp16":
        return lambda: to_fp16(fp32, target)
    if settings.int8_method == "nncf":
        return lambda: to_int8_nncf(fp32, target, data.calibration)
    return lambda: to_int8(fp32, target, data.calibration, settings.int8_scheme, workdir)


def _build(
    job: _StageBuild,
    row: ExportRow,
    convert: Callable[[], Any],
    fp32_test_logits: np.ndarray | None = None,
) -> ExportRow:
    """Convert, check, compare; fill `row` (status explains a failure; the temp file stays private).

    fp32_test_logits: (N, C) float32, the fp32 file's logits on the test images; None for the fp32 file.
    """
    path = job.file(row.precision)
    started = time.perf_counter()
    try:
        with disk_full_as_error(job.workdir.parent / path.name):  # named as the file it would become
            convert()
            tidy_onnx(path)
            check(path)
        _measure(row, job, path, fp32_test_logits)
        failure = threshold_failure(row, job.settings)
        if failure:
            row.status = f"exported but failed its check: {failure}"
    except KdedgeError as err:
        row.status = str(err)
    row.seconds = time.perf_counter() - started
    return row


def _measure(row: ExportRow, job: _StageBuild, path: Path, fp32_test_logits: np.ndarray | None) -> None:
    """Fill `row`: parity with PyTorch on random inputs, then accuracy and agreement with the fp32 file
    on the test images (the fp32 file is compared with itself); the logits go to row.extra."""
    parity = torch_parity(job.model, path, job.chw)
    logits = onnx_logits(path, job.data.test_images)
    reference = logits if fp32_test_logits is None else fp32_test_logits
    row.max_abs_diff, row.rel_diff, row.random_agreement = (
        parity.max_abs_diff,
        parity.rel_diff,
        parity.agreement,
    )
    row.test_accuracy, row.test_agreement = (
        accuracy(logits, job.data.test_labels),
        agreement(logits, reference),
    )
    row.test_count, row.size_mb = len(logits), path.stat().st_size / 1e6
    row.test_max_abs_diff = float(np.abs(logits - reference).max()) if len(logits) else None
    row.extra["test_logits"] = logits
