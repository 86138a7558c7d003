"""Runners for the edge formats (kdedge.runtime.formats): ExecuTorch `.pte` through its Python runtime,
LiteRT `.tflite` through ai-edge-litert's interpreter. Same protocol as kdedge.bench.runners:
predict(batch (N, C, H, W) float32 normalised) -> logits (N, K) float32; bind(batch) -> a call to time.

The LiteRT runner imports numpy and ai_edge_litert only (`kdedge predict x.tflite` stays torch-free);
ExecuTorch's runtime takes torch tensors, so its runner imports torch. A file the runtime cannot load
is one InputError line naming it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from kdedge.errors import InputError

if TYPE_CHECKING:
    from kdedge.runtime.formats import Format


@contextlib.contextmanager
def native_output_silenced() -> Iterator[None]:
    """Point file descriptors 1 and 2 at a temp file while native code (TFLite, XLA, ExecuTorch's C++
    logging) prints its INFO lines, so kdedge's output stays its own; Python-level errors still raise."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


class Unavailable(Exception):
    """The runtime is not installed here; bench turns this into a skipped row."""


def _first_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text[:160] or type(err).__name__


class ExecuTorchRunner:
    """ExecuTorch's Python runtime (XNNPACK kernels are built into the pybindings); `threads` sizes
    ExecuTorch's thread pool."""

    def __init__(self, path: str | Path, threads: int = 1, batch_size: int | None = None) -> None:
        if importlib.util.find_spec("executorch") is None:
            raise Unavailable("executorch is not installed (pip install 'kdedge-distill[executorch]')")
        import torch

        with native_output_silenced():  # the runtime's C++ logs CPU info at import
            from executorch.extension.pybindings.portable_lib import _unsafe_reset_threadpool
            from executorch.runtime import Runtime

        self.torch, path = torch, Path(path)
        if not path.is_file():
            raise InputError(f"ExecuTorch file not found: {path}")
        try:
            with native_output_silenced():
                if threads:
                    _unsafe_reset_threadpool(threads)
                self.method = Runtime.get().load_program(path).load_method("forward")
        except Exception as err:  # noqa: BLE001 - the runtime raises RuntimeError/ValueError for a bad file
            raise InputError(f"{path}: ExecuTorch cannot load it ({_first_line(err)})") from None
        # the dynamic batch dimension's bound as memory-planned into the file (kdedge.export.executorch_convert
        # .batch_bound; 15 in CNN files written before that fix): a larger input fails, so calls are chunked
        self.max_batch = max(int(self.method.metadata.input_tensor_meta(0).sizes()[0]), 1)
        self.detail = f"ExecuTorch XNNPACK, {threads} threads"

    def _chunks(self, batch: np.ndarray) -> list[object]:
        """(N, C, H, W) -> torch tensors of at most max_batch images each."""
        return [
            self.torch.from_numpy(np.ascontiguousarray(batch[start : start + self.max_batch], dtype=np.float32))
            for start in range(0, len(batch), self.max_batch)
        ]

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Logits (N, classes) float32 for any N, in chunks of the file's batch bound (a whole test set in
        one call fails set_inputs)."""
        outputs = [self.method.execute([chunk])[0].numpy().astype(np.float32) for chunk in self._chunks(batch)]
        return np.concatenate(outputs) if outputs else np.zeros((0, 0), np.float32)

    def bind(self, batch: np.ndarray) -> Callable[[], object]:
        chunks = self._chunks(batch)
        return lambda: [self.method.execute([chunk]) for chunk in chunks]

    def sync(self) -> None:
        """execute() is synchronous."""


class LiteRtRunner:
    """ai-edge-litert's Interpreter (XNNPACK delegate on the CPU). The files are fixed-batch: predict
    runs any number of images in chunks of the file's batch (the last one padded). A full-integer int8
    file has int8 input/output tensors: the input is quantised with the tensor's scale / zero point and
    the output dequantised, as a device application would."""

    def __init__(self, path: str | Path, threads: int = 1, batch_size: int | None = None) -> None:
        if importlib.util.find_spec("ai_edge_litert") is None:
            raise Unavailable("ai-edge-litert is not installed (pip install 'kdedge-distill[litert]')")
        from ai_edge_litert.interpreter import Interpreter

        path = Path(path)
        if not path.is_file():
            raise InputError(f"LiteRT file not found: {path}")
        try:
            with native_output_silenced():
                self.interpreter = Interpreter(model_path=str(path), num_threads=max(threads, 1))
                self.interpreter.allocate_tensors()
        except Exception as err:  # noqa: BLE001 - ValueError/RuntimeError for a corrupt flatbuffer
            raise InputError(f"{path}: LiteRT cannot load it ({_first_line(err)})") from None
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self.batch = int(self.input["shape"][0])
        self.detail = f"LiteRT {self._version()} XNNPACK, {threads} threads, batch {self.batch} file"

    @staticmethod
    def _version() -> str:
        from importlib.metadata import version

        return version("ai-edge-litert")

    def _feed(self, batch: np.ndarray) -> np.ndarray:
        """float32 (b, C, H, W) -> what the input tensor takes (int8 files: quantised)."""
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if self.input["dtype"] == np.float32:
            return batch
        scale, zero = self.input["quantization"]
        info = np.iinfo(self.input["dtype"])
        return np.clip(np.round(batch / scale + zero), info.min, info.max).astype(self.input["dtype"])

    def _fetch(self) -> np.ndarray:
        out = self.interpreter.get_tensor(self.output["index"])
        if self.output["dtype"] == np.float32:
            return out.copy()
        scale, zero = self.output["quantization"]
        return ((out.astype(np.float32) - zero) * scale).astype(np.float32)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        outputs = []
        for start in range(0, len(batch), self.batch):
            chunk = batch[start : start + self.batch]
            count = len(chunk)
            if count < self.batch:  # fixed-batch file: pad with copies of the last image
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], self.batch - count, axis=0)])
            self.interpreter.set_tensor(self.input["index"], self._feed(chunk))
            self.interpreter.invoke()
            outputs.append(self._fetch()[:count])
        return np.concatenate(outputs).astype(np.float32)

    def bind(self, batch: np.ndarray) -> Callable[[], object]:
        if len(batch) != self.batch:
            raise Unavailable(f"the file is fixed to batch {self.batch} (export --batch {len(batch)})")
        feed = self._feed(batch)

        def call() -> None:
            self.interpreter.set_tensor(self.input["index"], feed)
            self.interpreter.invoke()

        return call

    def sync(self) -> None:
        """invoke() is synchronous."""


def open_runner(path: str | Path, threads: int = 1, batch_size: int | None = None, fmt: Format | None = None):
    """The runner of an edge file by its format (kdedge.runtime.formats; `fmt`: the entry to use instead of
    the table's, as a bench child process is given it), e.g. for predict and checks."""
    from kdedge.runtime.formats import FORMATS, format_of_file

    fmt = fmt or format_of_file(str(path))
    if fmt is None or not fmt.edge:
        suffixes = ", ".join(dict.fromkeys(f.suffix for f in FORMATS.values() if f.edge))
        raise InputError(f"{path}: not an edge file ({suffixes})")
    reason = fmt.run_skip_reason() or (None if fmt.runner else "no runner here")
    if reason:
        raise Unavailable(f"{fmt.name}: {reason}")
    module, name = fmt.runner.split(":")
    cls = getattr(importlib.import_module(module), name)
    return cls(path, threads, batch_size)
