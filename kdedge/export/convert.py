"""The three conversions: PyTorch -> ONNX fp32 (torch.onnx dynamo exporter), fp32 -> fp16 (onnxruntime's
float16 converter, fp32 inputs/outputs kept), fp32 -> int8 (onnxruntime static QDQ quantisation).

Why the dynamo exporter (torch.onnx.export(dynamo=True)): it is torch's default and maintained path
since 2.9 (the TorchScript exporter is deprecated), and on this project's models it is the only one
whose Swin graph survives onnxruntime's quantisation pre-processing (TorchScript's Swin export fails
symbolic shape inference). It is 2-6x slower to export (seconds per model), which is acceptable.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from kdedge.errors import RuntimeFailure
from kdedge.export.int8_rescue import Rescue, excluded_nodes
from kdedge.export.int8_schemes import quantize_static_options

TRACE_BATCH = 2  # traced batch size; parity is checked at other sizes (1 and 7) to prove the dim is dynamic

# int8 schemes (what is quantised, activation/weight types, 7-bit weights): kdedge.export.int8_schemes.
# u8s8 is the fast one on x86; onnxruntime's s8s8 default measured 1.1-4x slower than fp32 on conv nets
# on this project's 2-core Xeon.


@contextlib.contextmanager
def _quiet() -> Iterator[io.StringIO]:
    """Swallow the exporters' stdout chatter and warnings; the captured text goes into error messages."""
    captured = io.StringIO()
    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(captured), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield captured
    finally:
        logger.setLevel(level)


@contextlib.contextmanager
def _inside(folder: Path) -> Iterator[None]:
    """Run with `folder` as working directory: onnxruntime's shape inference drops a debug file
    (sym_shape_infer_temp.onnx) into the CWD when it fails, and it must not litter the user's folder."""
    previous = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return (text.splitlines()[0][:200] if text else "") or type(err).__name__


def _list_torchlib_once() -> None:
    """torch.onnx.export (the dynamo exporter, torch 2.14) lists onnxscript's ~4,000 torchlib functions again
    for every export, building each one's IR: ~0.8 s per exported file on one core, the same list each time.
    A process that exports several files (fp32 then its fp16/int8 sources, a search's candidates) keeps
    the first list; the files written are the same. Where the private hook moved, nothing changes."""
    from torch.onnx._internal.exporter import _registration

    apis = getattr(_registration, "onnxscript_apis", None)
    listing = getattr(apis, "get_torchlib_ops", None)
    if callable(listing) and not hasattr(listing, "cache_info"):
        apis.get_torchlib_ops = functools.cache(listing)


def export_fp32(model: nn.Module, chw: tuple[int, int, int], path: Path, opset: int) -> None:
    """Write `model` (eval, CPU) as ONNX: "images" (N, C, H, W) -> "logits" (N, K), N dynamic."""
    _list_torchlib_once()
    example = torch.randn(TRACE_BATCH, *chw)
    batch = torch.export.Dim("batch", min=1, max=65536)
    try:
        with _quiet():
            torch.onnx.export(
                model,
                (example,),
                str(path),
                input_names=["images"],
                output_names=["logits"],
                opset_version=opset,
                dynamic_shapes=({0: batch},),
                dynamo=True,
                external_data=False,
                verbose=False,
            )
    except Exception as err:  # noqa: BLE001 - exporter failures come in many types; all mean "cannot export"
        raise RuntimeFailure(
            f"torch.onnx (dynamo) cannot export this model: {type(err).__name__}: {_first_line(err)}"
        ) from None


def to_fp16(src: Path, dst: Path) -> None:
    """fp16 weights and compute, fp32 "images" / "logits" (keep_io_types) so callers need no change."""
    from onnxruntime.transformers.float16 import convert_float_to_float16
    from onnxruntime.transformers.onnx_model import OnnxModel

    with _quiet():
        converted = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
        # the converter appends the input Casts at the end; the checker wants topological order
        wrapper = OnnxModel(converted)
        wrapper.topological_sort()
    onnx.save(wrapper.model, str(dst))


class _Calibration:
    """onnxruntime CalibrationDataReader over normalised images (N, C, H, W) float32, in small batches."""

    def __init__(self, images: np.ndarray, batch_size: int = 16) -> None:
        self._batches = iter([images[i : i + batch_size] for i in range(0, len(images), batch_size)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._batches, None)
        return None if batch is None else {"images": batch}


def to_int8(
    src: Path, dst: Path, calibration: np.ndarray, scheme: str, workdir: Path, rescue: Rescue | None = None
) -> None:
    """Static QDQ int8: per-channel s8 weights, u8 or s8 activations, which operators and 8- or 7-bit weights
    as `scheme` says (kdedge.export.int8_schemes), MinMax ranges calibrated
    on `calibration` (N, C, H, W) float32 real training images, after quant_pre_process (shape inference
    + onnxruntime graph optimisation, as onnxruntime recommends before quantising). rescue: the nodes kept
    in fp32 and the calibration method instead (kdedge.export.int8_rescue)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    options = quantize_static_options(scheme)
    options["activation_type"], options["weight_type"] = (
        getattr(QuantType, options[key]) for key in ("activation_type", "weight_type")
    )
    src, dst, workdir = src.resolve(), dst.resolve(), workdir.resolve()  # _inside() changes the CWD
    prepared = workdir / f"{src.stem}.pre.onnx"
    try:
        with _quiet(), _inside(workdir):
            quant_pre_process(str(src), str(prepared))
            if rescue is not None:  # node names as quant_pre_process left them
                options["nodes_to_exclude"] = excluded_nodes(onnx.load(str(prepared)), rescue)
            quantize_static(
                str(prepared),
                str(dst),
                _Calibration(calibration),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                calibrate_method=getattr(CalibrationMethod, rescue.calibration if rescue else "MinMax"),
                **options,
            )
    except Exception as err:  # noqa: BLE001 - the quantiser's failures are all "this graph cannot be quantised"
        raise RuntimeFailure(
            f"onnxruntime int8 quantisation failed: {type(err).__name__}: {_first_line(err)}"
        ) from None
    finally:
        prepared.unlink(missing_ok=True)


def tidy_onnx(path: Path) -> None:
    """Rewrite the file only where it helps its consumers, never its meaning (one load, at most one save):
    unused opset imports go (drop_unused_opsets), and so does HardSigmoid's `beta` where it equals the
    ONNX default 0.5 (drop_default_hardsigmoid_beta)."""
    model = onnx.load(str(path))
    changed = drop_unused_opsets(model)
    changed = drop_default_hardsigmoid_beta(model) or changed
    if changed:
        onnx.save(model, str(path))


def drop_unused_opsets(model: onnx.ModelProto) -> bool:
    """Remove opset imports no node uses; True if any went. onnxruntime's quantisation pre-processing imports
    every domain it knows (ai.onnx.training, com.microsoft.nchwc, org.pytorch.aten, ...) into the int8 file
    although no node uses them, and kdedge.runtime.check_onnx rightly refuses a file that imports a custom-op
    domain."""
    used = {node.domain for node in model.graph.node} | {"", "ai.onnx"}
    kept = [opset for opset in model.opset_import if opset.domain in used]
    if len(kept) == len(model.opset_import):
        return False
    del model.opset_import[:]
    model.opset_import.extend(kept)
    return True


def drop_default_hardsigmoid_beta(model: onnx.ModelProto) -> bool:
    """Remove `beta=0.5` (the ONNX default: same result) from every HardSigmoid node; True if any changed.

    Why: OpenCV DNN (5.1) fuses Mul(A, HardSigmoid(B)) with alpha=1/6 and beta=0.5 both written into
    HardSwish(B) without checking that A is B. In squeeze-excite A is the feature map (N, C, H, W) and B the
    (N, C, 1, 1) gate, so OpenCV silently computed HardSwish(gate) instead: the MobileNetV3-L student's
    logits were off by 11 with 3 % top-1 agreement. torch's dynamo exporter writes both attributes; without
    the default beta OpenCV matches onnxruntime to 1e-4 (docs/formats.md, "ONNX consumers")."""
    changed = False
    for node in model.graph.node:
        if node.op_type != "HardSigmoid":
            continue
        kept = [a for a in node.attribute if not (a.name == "beta" and abs(a.f - 0.5) < 1e-7)]
        if len(kept) != len(node.attribute):
            del node.attribute[:]
            node.attribute.extend(kept)
            changed = True
    return changed
