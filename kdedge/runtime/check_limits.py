"""The limits every model-file check applies (kdedge.runtime.check, kdedge.runtime.check_onnx), and the
one line a refusal gives."""

from __future__ import annotations

from pathlib import Path

from kdedge.errors import InputError

MAX_FILE_BYTES = 4 << 30  # 4 GiB: larger than any model kdedge makes for an edge device by 10x
MAX_TENSOR_BYTES = 4 << 30  # what one declared tensor may claim before anything is allocated
MAX_DIM = 1 << 20  # one dimension (a 1M-wide image or vocabulary is already far beyond edge models)
MAX_HEADER_BYTES = 100 << 20  # safetensors' own limit for its JSON header


def refuse(path: Path, why: str) -> InputError:
    """The one line of a refused file: its path and why."""
    return InputError(f"{path}: refused before loading: {why}")
