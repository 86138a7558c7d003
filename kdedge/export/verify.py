"""Checks every exported file passes before it is kept: the ONNX checker, parity with PyTorch on
inputs the exporter never saw (batch sizes other than the traced one), and accuracy / top-1
agreement on real test images."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from kdedge.errors import RuntimeFailure
from kdedge.runtime.onnx_meta import open_session, run_logits

PARITY_BATCHES = (1, 7)  # neither is the traced batch size (2): proves the batch dimension is dynamic


@dataclass(frozen=True)
class Parity:
    """ONNX vs PyTorch on random inputs: max |difference|, that / max |torch logit|, top-1 agreement."""

    max_abs_diff: float
    rel_diff: float
    agreement: float


def check(path: Path) -> None:
    """onnx.checker with full_check (strict shape inference): a malformed graph is a runtime failure."""
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as err:
        first = str(err).strip().splitlines()[0][:200]
        raise RuntimeFailure(f"{path.name}: onnx.checker rejects the graph: {first}") from None


@torch.inference_mode()
def torch_parity(model: nn.Module, path: Path, chw: tuple[int, int, int], seed: int = 1234) -> Parity:
    """`model` (eval, CPU) vs the ONNX file on fresh N(0, 1) inputs (b, C, H, W), b in PARITY_BATCHES."""
    session = open_session(path)
    generator = torch.Generator().manual_seed(seed)
    diffs, scales, agree, total = [], [], 0, 0
    for batch in PARITY_BATCHES:
        images = torch.randn(batch, *chw, generator=generator)
        expected = model(images).float().numpy()
        got = run_logits(session, images.numpy())
        if got.shape != expected.shape:
            raise RuntimeFailure(
                f"{path.name}: logits shape {got.shape} at batch {batch}, PyTorch gives "
                f"{expected.shape} (is the batch dimension dynamic?)"
            )
        diffs.append(float(np.abs(got - expected).max()))
        scales.append(float(np.abs(expected).max()))
        agree += int((got.argmax(1) == expected.argmax(1)).sum())
        total += batch
    max_abs = max(diffs)
    return Parity(max_abs, max_abs / max(max(scales), 1e-12), agree / total)


def onnx_logits(path: Path, images: np.ndarray) -> np.ndarray:
    """logits (N, K) float32 of the ONNX file for normalised images (N, C, H, W) float32."""
    return run_logits(open_session(path), images)


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float((logits.argmax(1) == labels).mean()) if len(labels) else float("nan")


def agreement(logits: np.ndarray, reference: np.ndarray) -> float:
    """Fraction of rows whose top-1 class is the same in both (N, K) arrays."""
    return float((logits.argmax(1) == reference.argmax(1)).mean()) if len(logits) else float("nan")
