"""The MNN runner: a `.mnn` file through MNN's Python runtime (`MNN.nn` module API) on the CPU. Same protocol
as kdedge.bench.runners: predict(batch (N, C, H, W) float32 normalised) -> logits (N, K) float32; bind(batch)
-> a call to time. numpy and MNN only (no torch).

`import MNN` loads the runtime only; MNN's converter script (`mnnconvert`) is the part that installs and
calls a usage logger (see kdedge/export/mnn_convert.py). MNN verifies a file's flatbuffer before it builds
the module, so a damaged file is one InputError line.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import numpy as np

from kdedge.errors import InputError
from kdedge.runtime.edge_runners import Unavailable, native_output_silenced


class MnnRunner:
    """MNN CPU backend, `threads` threads, precision "high" (fp32 arithmetic; an fp16 file holds fp16
    weights that MNN widens on load)."""

    def __init__(self, path: str | Path, threads: int = 1, batch_size: int | None = None) -> None:
        if importlib.util.find_spec("MNN") is None:
            raise Unavailable("MNN is not installed (pip install 'kdedge-distill[mnn]')")
        with native_output_silenced():  # MNN prints "MNN use high precision" and its load errors
            import MNN

            self.mnn, path = MNN, Path(path)
            if not path.is_file():
                raise InputError(f"MNN file not found: {path}")
            config = {"backend": "CPU", "numThread": max(threads, 1), "precision": "high"}
            manager = MNN.nn.create_runtime_manager((config,))
            try:
                self.module = MNN.nn.load_module_from_file(str(path), ["images"], ["logits"], runtime_manager=manager)
            except Exception:  # noqa: BLE001 - MNN raises SystemError for a file it cannot verify
                self.module = None
        if self.module is None:
            raise InputError(f"{path}: MNN cannot load it (not an MNN model with inputs 'images' -> 'logits')")
        self.detail = f"MNN {MNN.version()} CPU, precision high, {max(threads, 1)} threads"

    def _run(self, batch: np.ndarray) -> object:
        MNN = self.mnn
        images = MNN.expr.const(np.ascontiguousarray(batch, dtype=np.float32), list(batch.shape), MNN.expr.NCHW)
        return self.module.forward([images])[0]

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Logits (N, K) float32 of a normalised batch (N, C, H, W)."""
        if not len(batch):
            return np.zeros((0, 0), np.float32)
        logits = self.mnn.expr.convert(self._run(batch), self.mnn.expr.NCHW).read()
        return np.array(logits, dtype=np.float32).reshape(len(batch), -1)

    def bind(self, batch: np.ndarray) -> Callable[[], object]:
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        return lambda: self._run(batch).read()

    def sync(self) -> None:
        """read() waits for the result."""
