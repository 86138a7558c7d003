"""The runtimes that consume an ONNX file besides kdedge's own runners: onnxruntime (the reference), OpenVINO,
OpenCV DNN (`cv2.dnn.readNetFromONNX`, the usual choice on boards without onnxruntime) and tract (sonos/tract's
Python bindings, a small Rust runtime). Each is an optional extra; `logits_of(name, path, images)` runs one of
them on a batch and returns its logits, or raises with the runtime's own first error line.

`python -m kdedge.runtime.consumers NAME MODEL.onnx IMAGES.npy OUT.npy` does the same in a child process:
kdedge.export.compat runs every consumer that way, because a consumer handed a file it cannot read may crash
rather than raise (OpenCV 5.1 segfaulted on a model passed as bytes here). numpy only besides the runtime
itself (no torch).
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Consumer:
    """One runtime that reads ONNX files: the module to import, its pip distribution and kdedge extra."""

    name: str
    module: str
    distribution: str
    extra: str | None  # None: one of kdedge's own dependencies

    def installed(self) -> bool:
        return importlib.util.find_spec(self.module) is not None

    def version(self) -> str:
        try:
            return version(self.distribution)
        except PackageNotFoundError:
            return "-"

    def pip_hint(self) -> str:
        return f"pip install 'kdedge-distill[{self.extra}]'" if self.extra else "pip install kdedge-distill"


CONSUMERS: dict[str, Consumer] = {
    c.name: c
    for c in (
        Consumer("onnxruntime", "onnxruntime", "onnxruntime", None),
        Consumer("openvino", "openvino", "openvino", "openvino"),
        Consumer("opencv", "cv2", "opencv-python-headless", "consumers"),
        Consumer("tract", "tract", "tract", "consumers"),
    )
}


def _onnxruntime(path: Path, images: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: images})[0]


def _openvino(path: Path, images: np.ndarray) -> np.ndarray:
    import openvino as ov

    core = ov.Core()
    config = {"INFERENCE_NUM_THREADS": 1, "INFERENCE_PRECISION_HINT": "f32"}  # f32: no bf16 on AMX CPUs
    compiled = core.compile_model(core.read_model(str(path)), "CPU", config)
    return np.asarray(compiled([images])[0])


def _opencv(path: Path, images: np.ndarray) -> np.ndarray:
    import cv2

    cv2.setNumThreads(1)
    net = cv2.dnn.readNetFromONNX(str(path))
    net.setInput(images)
    return np.asarray(net.forward())


def _tract(path: Path, images: np.ndarray) -> np.ndarray:
    import tract

    # the file as it is: pinning the input to a fixed batch conflicts with the symbolic batch the exporter
    # wrote into every intermediate shape ("Impossible to unify Sym(batch) with Val(1)")
    runnable = tract.onnx().load(str(path)).into_model().into_runnable()
    return runnable.run([images])[0].to_numpy()


RUNS: dict[str, Callable[[Path, np.ndarray], np.ndarray]] = {
    "onnxruntime": _onnxruntime,
    "openvino": _openvino,
    "opencv": _opencv,
    "tract": _tract,
}


def logits_of(name: str, path: Path, images: np.ndarray) -> np.ndarray:
    """Logits (N, K) float32 of `images` (N, C, H, W) float32 normalised, computed by consumer `name`."""
    logits = RUNS[name](Path(path), np.ascontiguousarray(images, dtype=np.float32))
    return np.asarray(logits, dtype=np.float32).reshape(len(images), -1)


def first_line(err: BaseException) -> str:
    """A runtime's error as one line: its type and first sentence, without Rust stack traces."""
    text = " ".join(str(err).split()).split(" Stack backtrace:")[0]
    return f"{type(err).__name__}: {text}"[:200]


def main(argv: list[str]) -> int:
    """Child entry: NAME MODEL IMAGES.npy OUT.npy -> OUT.npy holds the logits; exit 3 + one stderr line if the
    runtime refuses the file."""
    name, model, images, out = argv
    try:
        logits = logits_of(name, Path(model), np.load(images))
    except Exception as err:  # noqa: BLE001 - every runtime raises its own types; all mean "refused"
        print(first_line(err), file=sys.stderr)
        return 3
    np.save(out, logits)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
