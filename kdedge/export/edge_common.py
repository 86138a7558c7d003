"""What every non-ONNX converter takes (ConvertJob) and how its failures become one line."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import nn

from kdedge.errors import RuntimeFailure
from kdedge.runtime.edge_runners import native_output_silenced

TRACE_BATCH = 2  # traced batch size of dynamic-batch formats; parity is checked at 1 and 7


@dataclass(frozen=True)
class ConvertJob:
    """One file to write. model: eval, CPU; chw: (C, H, W); calibration: (N, C, H, W) float32 normalised
    real training images (empty unless int8); batch: the fixed batch size of a fixed-batch format (None
    for a dynamic one)."""

    model: nn.Module
    chw: tuple[int, int, int]
    precision: str
    calibration: np.ndarray
    path: Path
    batch: int | None = None


class ExportFailed(RuntimeFailure):
    """The converter itself failed (as opposed to a file that was written but missed its checks)."""


@contextlib.contextmanager
def _silenced() -> Iterator[None]:
    """The converters print progress, MLIR dumps and warnings to stdout/stderr: keep the user's
    terminal to kdedge's own lines (C++ logging to fd 2 is turned down through the env var too)."""
    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(logging.ERROR)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        with (
            native_output_silenced(),
            contextlib.redirect_stdout(io.StringIO()),
            contextlib.redirect_stderr(io.StringIO()),
            warnings.catch_warnings(),
        ):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


@contextlib.contextmanager
def converter_errors(name: str) -> Iterator[None]:
    """Run a converter quietly; any exception it raises becomes ExportFailed with its first line."""
    try:
        with _silenced():
            yield
    except KeyboardInterrupt:
        raise
    except Exception as err:  # noqa: BLE001 - converters raise many types; all mean "cannot convert"
        text = str(err).strip()
        first = (text.splitlines()[0][:200] if text else "") or type(err).__name__
        raise ExportFailed(f"{name} cannot convert this model: {type(err).__name__}: {first}") from None
    finally:
        sys.stdout.flush()
