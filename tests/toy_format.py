"""A toy export format for tests/test_extending.py, written the way docs/formats.md#adding-a-format says: a
converter `convert(job)` and a runner class (`predict`, `bind`, `sync`, `detail`), named by a `Format`
entry ("toy_format:convert", "toy_format:NumpyMlpRunner").

The file (`.npz`) holds an MLP's Linear layers as NumPy arrays (w0, b0, w1, b1, ...); the runner computes
the logits with NumPy alone: x -> relu(x @ w0.T + b0) -> ... -> x @ wN.T + bN. Only numpy is imported at
the top, so a bench child process that loads the runner stays light.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

CALLS: list[int] = []  # batch sizes predict() was called with in this process (the test's proof of use)


def convert(job) -> None:
    """Write job.path (a kdedge.export.edge_common.ConvertJob): the Linear layers of an MLP, fp32."""
    from torch import nn

    from kdedge.export.edge_common import ExportFailed

    layers = [m for m in job.model.modules() if isinstance(m, nn.Linear)]
    if not layers or any(
        not isinstance(m, nn.Linear | nn.ReLU | nn.Flatten | nn.Dropout | nn.Sequential) for m in job.model.modules()
    ):
        raise ExportFailed("the toy format writes MLPs (Flatten, Linear, ReLU, Dropout) only")
    arrays = {}
    for index, layer in enumerate(layers):
        arrays[f"w{index}"] = layer.weight.detach().float().numpy()
        arrays[f"b{index}"] = layer.bias.detach().float().numpy()
    with open(job.path, "wb") as handle:  # np.savez on a path would append .npz to job.path's name
        np.savez(handle, **arrays)


class NumpyMlpRunner:
    """The toy format's runner: the runner protocol of kdedge.bench.runners on NumPy alone."""

    def __init__(self, path: str | Path, threads: int = 1, batch_size: int | None = None) -> None:
        with np.load(path) as arrays:
            count = len(arrays.files) // 2
            self.layers = [(arrays[f"w{i}"], arrays[f"b{i}"]) for i in range(count)]
        self.detail = f"NumPy MLP, {count} layers"

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Logits (N, K) float32 of normalised images (N, C, H, W) float32."""
        CALLS.append(len(batch))
        x = np.asarray(batch, dtype=np.float32).reshape(len(batch), -1)
        for index, (weight, bias) in enumerate(self.layers):
            x = x @ weight.T + bias
            if index < len(self.layers) - 1:
                x = np.maximum(x, 0)
        return x.astype(np.float32)

    def bind(self, batch: np.ndarray) -> Callable[[], object]:
        """A call on a fixed batch, for timing."""
        return lambda: self.predict(batch)

    def sync(self) -> None:
        """predict() is synchronous."""
