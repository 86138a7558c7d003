"""fp32 ONNX -> int8 QDQ ONNX with NNCF, OpenVINO's post-training quantiser (`--int8-method nncf`).

The alternative to onnxruntime's quantize_static for models where that loses accuracy: NNCF adds
fast bias correction after calibration and, for attention models, SmoothQuant and its transformer
quantisation rules. It reads and writes plain ONNX (QuantizeLinear / DequantizeLinear pairs), so the
file goes through the same checks, metadata and runtimes as the onnxruntime one.

nncf is optional (`pip install 'kdedge-distill[openvino]'`) and imported only inside these functions.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx

from kdedge.errors import InputError, RuntimeFailure
from kdedge.export.convert import _first_line, _quiet

NNCF_MISSING = "int8 method 'nncf' needs `pip install 'kdedge-distill[openvino]'`"


def require_nncf() -> None:
    """Fail before any work, in one line, when nncf is not installed."""
    if importlib.util.find_spec("nncf") is None:
        raise InputError(NNCF_MISSING)


def nncf_version() -> str:
    from nncf.version import __version__

    return __version__


@contextlib.contextmanager
def _nncf_quiet() -> Iterator[None]:
    """Errors only from nncf's logger (INFO lines on its own stdout handler) and from torch's
    cpp_extension, which warns about CUDA_HOME when nncf probes its torch backend; both have their own
    handlers, so the root logger level that _quiet() sets does not reach them."""
    from nncf.common.logging.logger import nncf_logger, set_log_level

    cpp_extension = logging.getLogger("torch.utils.cpp_extension")
    levels = nncf_logger.level, cpp_extension.level
    set_log_level(logging.ERROR)
    cpp_extension.setLevel(logging.ERROR)
    try:
        yield
    finally:
        set_log_level(levels[0])
        cpp_extension.setLevel(levels[1])


def to_int8_nncf(src: Path, dst: Path, calibration: np.ndarray) -> None:
    """Quantise `src` with nncf.quantize, calibrated on `calibration` (M, C, H, W) float32 normalised real
    training images (the same images as the onnxruntime path), one image per calibration sample so that
    NNCF's per-sample statistics see M samples. Attention graphs (a Softmax inside) get NNCF's
    transformer model type, its setting for attention models (SmoothQuant first, asymmetric activations)."""
    model = onnx.load(str(src))
    transformer = any(node.op_type == "Softmax" for node in model.graph.node)
    try:  # the import too: an nncf that is installed but broken is this file's failure, in one line
        import nncf

        dataset = nncf.Dataset([image[None] for image in calibration], lambda image: {"images": image})
        with _quiet(), _nncf_quiet():
            quantized = nncf.quantize(
                model,
                dataset,
                subset_size=len(calibration),
                model_type=nncf.ModelType.TRANSFORMER if transformer else None,
            )
    except Exception as err:  # noqa: BLE001 - NNCF's failures all mean "cannot quantise this graph here"
        raise RuntimeFailure(f"nncf int8 quantisation failed: {type(err).__name__}: {_first_line(err)}") from None
    onnx.save(quantized, str(dst))


def activation_scheme(path: Path) -> str:
    """What the file's activation QuantizeLinear nodes use, with s8 weights: 'u8s8', 's8s8' or 'mixed'.

    NNCF's ONNX backend picks the type per tensor from the calibration range (s8 where it saw negative
    values, e.g. the normalised input, u8 where it did not, e.g. after ReLU), so --int8-scheme cannot be
    imposed on it; the metadata records what it chose instead.
    """
    model = onnx.load(str(path))
    initializers = {init.name: init for init in model.graph.initializer}
    types = {
        initializers[node.input[2]].data_type
        for node in model.graph.node
        if node.op_type == "QuantizeLinear" and len(node.input) > 2 and node.input[2] in initializers
    }
    if len(types) != 1:
        return "mixed" if types else "none"
    return {onnx.TensorProto.UINT8: "u8s8", onnx.TensorProto.INT8: "s8s8"}.get(types.pop(), "mixed")
