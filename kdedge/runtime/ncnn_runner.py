"""The NCNN runner: a `student.fp32.ncnn/` folder (model.ncnn.param + model.ncnn.bin, written by pnnx) run
through the `ncnn` Python runtime on the CPU. Same protocol as kdedge.bench.runners: predict(batch
(N, C, H, W) float32 normalised) -> logits (N, K) float32; bind(batch) -> a call to time. numpy and ncnn
only (no torch): what a board or phone has.

ncnn has no batch dimension: one image is one (C, H, W) Mat, so a batch runs image by image, as a device
application would. Precision is a runtime option in ncnn, not only a property of the file: on a CPU with
F16C or ARMv8.2 ncnn stores and packs activations in fp16 by default, which put an fp32 MLP's logits 2.5e-4
(relative) away from PyTorch, above the export's fp32 bound. A `*.fp32.ncnn` folder therefore runs with
the fp16/bf16 options off (exact fp32), a `*.fp16.ncnn` one with ncnn's defaults (fp16 weights, storage and
arithmetic where the CPU has it).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import numpy as np

from kdedge.errors import InputError
from kdedge.runtime.edge_runners import Unavailable, native_output_silenced

PARAM, BIN = "model.ncnn.param", "model.ncnn.bin"
PARAM_MAGIC = "7767517"  # first line of every ncnn .param text file


def param_layer_types(param: Path) -> list[str]:
    """The layer types a .param file names, in order; InputError for a file that is not an ncnn .param."""
    try:
        lines = param.read_text(errors="strict").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"{param}: not a readable ncnn .param text file ({type(err).__name__})") from None
    if not lines or lines[0].strip() != PARAM_MAGIC:
        raise InputError(f"{param}: not an ncnn .param file (first line is not the magic {PARAM_MAGIC})")
    return [line.split()[0] for line in lines[2:] if line.split()]


def unsupported_layers(param: Path) -> list[str]:
    """Layer types in `param` that this ncnn build does not have (pnnx writes ops it could not lower to ncnn
    under their PyTorch names, e.g. `pnnx.Expression` or `torch.roll`)."""
    import ncnn

    return sorted({t for t in param_layer_types(param) if ncnn.layer_to_index(t) < 0})


class NcnnRunner:
    """ncnn's Python runtime, CPU, `threads` threads, no Vulkan."""

    def __init__(self, path: str | Path, threads: int = 1, batch_size: int | None = None) -> None:
        if importlib.util.find_spec("ncnn") is None:
            raise Unavailable("ncnn is not installed (pip install 'kdedge-distill[ncnn]')")
        import ncnn

        path = Path(path)
        param, weights = path / PARAM, path / BIN
        if not param.is_file() or not weights.is_file():
            raise InputError(f"{path}: an NCNN model folder needs {PARAM} and {BIN} (made by `kdedge export`)")
        missing = unsupported_layers(param)
        if missing:
            raise InputError(f"{param}: layers this ncnn cannot run: {', '.join(missing)}")
        self.net = ncnn.Net()
        self._options(self.net.opt, threads, fp16=path.name.endswith(".fp16.ncnn"))
        with native_output_silenced():  # ncnn prints its own load errors to stderr
            loaded = self.net.load_param(str(param)) == 0 and self.net.load_model(str(weights)) == 0
        if not loaded:
            raise InputError(f"{path}: ncnn cannot load it (a damaged or truncated {PARAM} / {BIN}?)")
        self.input_name, self.output_name = self.net.input_names()[0], self.net.output_names()[0]
        self.ncnn = ncnn
        precision = "fp16 storage" if path.name.endswith(".fp16.ncnn") else "fp32"
        self.detail = f"ncnn {ncnn.__version__} CPU, {precision}, {max(threads, 1)} threads, one image per call"

    @staticmethod
    def _options(opt, threads: int, fp16: bool) -> None:
        """Threads, no GPU, and fp16/bf16 storage only for an fp16 file (see the module docstring)."""
        opt.num_threads = max(threads, 1)
        opt.use_vulkan_compute = False
        opt.use_fp16_packed = opt.use_fp16_storage = opt.use_fp16_arithmetic = fp16
        opt.use_bf16_storage = False

    def _one(self, image: np.ndarray) -> np.ndarray:
        """(C, H, W) float32 -> logits (K,) float32."""
        extractor = self.net.create_extractor()
        extractor.input(self.input_name, self.ncnn.Mat(np.ascontiguousarray(image, dtype=np.float32)))
        status, out = extractor.extract(self.output_name)
        if status != 0:
            raise InputError(f"ncnn could not compute the output (status {status})")
        return np.array(out, dtype=np.float32).reshape(-1)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Logits (N, K) float32 of a normalised batch (N, C, H, W)."""
        outputs = [self._one(image) for image in batch]
        return np.stack(outputs) if outputs else np.zeros((0, 0), np.float32)

    def bind(self, batch: np.ndarray) -> Callable[[], object]:
        images = [np.ascontiguousarray(image, dtype=np.float32) for image in batch]
        return lambda: [self._one(image) for image in images]

    def sync(self) -> None:
        """extract() is synchronous."""
