"""Options of `kdedge export`, validated before any work (check_request: formats, run, precisions, stages and
resolved settings, all without torch, so a typo is one line at once), and the real data (test images,
calibration images) the checks run on."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kdedge.errors import InputError, did_you_mean
from kdedge.export import INT8_METHODS, INT8_SCHEMES, PRECISIONS
from kdedge.export.plan import FormatPlan, plan_formats
from kdedge.files.fsguard import check_writable
from kdedge.files.rundir import RunDir
from kdedge.recipe import Recipe

STAGES = ("student", "teacher")


@dataclass(frozen=True)
class Settings:
    """Resolved export options: recipe `export:` section, overridden by what the caller passed."""

    opset: int
    calibration_images: int
    int8_scheme: str
    int8_method: str  # "ort" | "nncf"; an export option only (the recipe's export: section has no such key)
    min_top1_agreement: float
    fp32_rtol: float
    limit: int | None


@dataclass(frozen=True)
class EvalData:
    """Normalised float32 arrays: test images (N, C, H, W) + labels (N,), calibration images (M, C, H, W)."""

    test_images: np.ndarray
    test_labels: np.ndarray
    calibration: np.ndarray
    more_calibration: Callable[[int], np.ndarray] | None = None  # the first n of the same seeded order


def parse_precisions(text: str | list[str] | tuple[str, ...]) -> list[str]:
    """'fp32,int8' -> ['fp32', 'int8'] (fp32 always first: the others are converted from it)."""
    items = [p.strip() for p in (text.split(",") if isinstance(text, str) else text) if p.strip()]
    for item in items:
        if item not in PRECISIONS:
            raise InputError(
                f"--precision: unknown precision '{item}';{did_you_mean(item, PRECISIONS)} "
                f"allowed: {', '.join(PRECISIONS)}"
            )
    if not items:
        raise InputError(f"--precision: give at least one of {', '.join(PRECISIONS)}")
    return [p for p in PRECISIONS if p in items]


def resolve_settings(recipe: Recipe, overrides: Mapping[str, Any]) -> Settings:
    """Recipe defaults (recipe.export) with the non-None overrides applied and checked."""
    values = recipe.export.model_dump() | {"limit": None, "int8_method": "ort"}
    values |= {k: v for k, v in overrides.items() if v is not None}
    _check_int8(values, scheme_given=overrides.get("int8_scheme") is not None)
    checks = {
        "calibration_images": values["calibration_images"] > 0,
        "opset": 18 <= values["opset"] <= 23,
        "min_top1_agreement": 0 <= values["min_top1_agreement"] <= 1,
        "fp32_rtol": values["fp32_rtol"] > 0,
        "limit": values["limit"] is None or values["limit"] > 0,
    }
    bad = [k for k, ok in checks.items() if not ok]
    if bad:
        allowed = {
            "calibration_images": "> 0",
            "opset": "18..23",
            "min_top1_agreement": "0..1",
            "fp32_rtol": "> 0",
            "limit": "> 0",
        }
        raise InputError("; ".join(f"--{k.replace('_', '-')}: must be {allowed[k]} (got {values[k]})" for k in bad))
    return Settings(**values)


def _check_int8(values: dict, scheme_given: bool) -> None:
    """A known scheme and method; --int8-scheme only with onnxruntime's quantiser (NNCF picks per tensor)."""
    if values["int8_scheme"] not in INT8_SCHEMES:
        raise InputError(f"--int8-scheme: unknown scheme '{values['int8_scheme']}'; allowed: {', '.join(INT8_SCHEMES)}")
    method = values["int8_method"]
    if method not in INT8_METHODS:
        raise InputError(
            f"--int8-method: unknown method '{method}';{did_you_mean(method, INT8_METHODS)} "
            f"allowed: {', '.join(INT8_METHODS)}"
        )
    if method == "nncf" and scheme_given:
        # said out loud rather than ignored: NNCF's ONNX backend chooses u8 or s8 per activation tensor
        raise InputError("--int8-scheme applies to --int8-method ort only (nncf chooses u8/s8 per tensor)")


def select_stages(run: RunDir, recipe: Recipe, which: str) -> list[str]:
    """'student' | 'teacher' | 'both' -> the stages to export; 'both' says out loud which are missing."""
    if which not in (*STAGES, "both"):
        raise InputError(f"--model: must be student, teacher or both (got '{which}')")
    wanted = list(STAGES) if which == "both" else [which]
    present = [s for s in wanted if getattr(recipe, s) is not None and run.weights(s).is_file()]
    if not present:
        names = " or ".join(f"{s}.safetensors" for s in wanted)
        raise InputError(f"{run.path} has no trained {which if which != 'both' else 'model'} (missing {names})")
    return present


@dataclass(frozen=True)
class Request:
    """One export, checked (check_request builds it; kdedge.export.runner.export_run runs it): the formats'
    plan, the run and its recipe, the precisions, the stages `models` asked for that the run has, the settings."""

    plan: FormatPlan
    run: RunDir
    recipe: Recipe
    wanted: list[str]
    stages: list[str]
    settings: Settings
    models: str  # as asked: student | teacher | both ("both" with one stage trained is said when exporting)


def check_request(
    run_path: str | Path,
    models: str,
    precisions: str | list[str],
    formats: str | list[str] = "onnx",
    batches: str | list[int] = "1",
    overrides: Mapping[str, Any] | None = None,
) -> Request:
    """Every check of an export request that needs no torch and no data, in the order a user meets them:
    a format whose converter is missing, a folder that is not a run, a precision, the settings, a read-only
    RUN/export, a stage (`models`) the run lacks. overrides: values for the recipe's export section (opset,
    calibration_images, int8_scheme, int8_method, min_top1_agreement, fp32_rtol, limit); None keeps the recipe's."""
    plan = plan_formats(formats, batches)  # before the run is even read: a missing extra fails first
    run = RunDir(Path(run_path).resolve())  # absolute: int8 pre-processing runs in a temp working dir
    recipe = run.read_recipe()
    wanted = parse_precisions(precisions)
    settings = resolve_settings(recipe, overrides or {})
    check_writable(run.path / "export", "export folder")  # a read-only RUN: one line before any work
    return Request(plan, run, recipe, wanted, select_stages(run, recipe, models), settings, models)


def load_eval_data(recipe: Recipe, data_root: str | None, settings: Settings, need_calibration: bool) -> EvalData:
    """Real test images (first `limit`) and a seeded sample of training images for int8 calibration."""
    import torch

    from kdedge.data.types import normalize
    from kdedge.train.pipeline import prepare_data

    bundle = prepare_data(recipe, data_root)
    test = (
        bundle.test
        if settings.limit is None
        else bundle.test.subset(torch.arange(min(settings.limit, len(bundle.test))))
    )
    as_array = lambda images: normalize(images, bundle.mean, bundle.std).numpy()  # noqa: E731
    if not need_calibration:
        return EvalData(as_array(test.images), test.labels.numpy(), np.zeros((0,), np.float32))
    order = torch.randperm(len(bundle.train), generator=torch.Generator().manual_seed(recipe.seed))
    first = lambda count: as_array(bundle.train.images[order[:count]])  # noqa: E731
    return EvalData(as_array(test.images), test.labels.numpy(), first(settings.calibration_images), first)
