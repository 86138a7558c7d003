"""What kdedge tries when an int8 file misses the agreement bound (`kdedge export`, onnxruntime's quantiser).

Hard-swish, squeeze-excite and the first / last layers are the usual places where int8 loses a network's
top-1 (MobileNetV3: 71-76 % agreement with fp32 on RetinaMNIST). onnxruntime's quantize_static can keep
chosen nodes in fp32 (nodes_to_exclude) and calibrate activation ranges on a percentile of a larger sample
instead of min/max. Each rescue below is tried in turn, cheapest first; the first whose file meets the bound
is kept and named in the file's metadata (`kdedge.int8_rescue`) and in the export's line.
Weights are always per-channel (convert.to_int8), so that is not a rescue of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import onnx

from kdedge.export.int8_schemes import GEMM_OPS
from kdedge.models.quantisation import INT8_FRIENDLY_STUDENTS

SE_OPS = ("HardSigmoid", "HardSwish", "Sigmoid", "Mul", "ReduceMean", "GlobalAveragePool")
MORE_CALIBRATION = 4  # the percentile rescue calibrates on this many times --calibration-images


@dataclass(frozen=True)
class Rescue:
    """One way of quantising again: which nodes stay fp32, how activation ranges are calibrated."""

    name: str
    says: str
    keep_ends: bool = False  # the first and the last Conv / Gemm / MatMul stay fp32
    keep_ops: tuple[str, ...] = ()  # every node of these types stays fp32
    calibration: str = "MinMax"  # onnxruntime CalibrationMethod name
    more_images: bool = False  # MORE_CALIBRATION x the calibration images


RESCUES: tuple[Rescue, ...] = (
    Rescue("ends-fp32", "first and last layers kept in fp32", keep_ends=True),
    Rescue(
        "ends-se-fp32",
        "first and last layers, hard-swish and squeeze-excite ops kept in fp32",
        keep_ends=True,
        keep_ops=SE_OPS,
    ),
    Rescue(
        "percentile",
        f"activation ranges at the 99.999th percentile of {MORE_CALIBRATION}x the calibration images",
        calibration="Percentile",
        more_images=True,
    ),
)


def excluded_nodes(model: onnx.ModelProto, rescue: Rescue) -> list[str]:
    """The names of the nodes `rescue` keeps in fp32. The ends only when at least one weight layer stays
    quantised between them (a two-layer MLP kept whole in fp32 is no int8 file)."""
    weighted = [node.name for node in model.graph.node if node.op_type in GEMM_OPS]
    names = [weighted[0], weighted[-1]] if rescue.keep_ends and len(weighted) >= 3 else []
    return names + [node.name for node in model.graph.node if node.op_type in rescue.keep_ops]


def try_rescues(attempt: Callable[[Rescue], tuple[bool, float]]) -> tuple[Rescue | None, list[str]]:
    """Call attempt(rescue) -> (passed, agreement) for each rescue until one passes: (that rescue or None,
    one 'name 0.81' entry per rescue tried)."""
    tried: list[str] = []
    for rescue in RESCUES:
        passed, agreement = attempt(rescue)
        tried.append(f"{rescue.name} {agreement:.4f}")
        if passed:
            return rescue, tried
    return None, tried


def what_to_try(best: float | None) -> str:
    """The hint after an agreement failure: every way forward, the bound that would have passed first."""
    lower = f"--min-agreement {max(best - 0.005, 0):.2f} (accept the file), " if best else "--min-agreement, "
    return (
        f"try {lower}--int8-method nncf, --precision fp32,fp16 (no int8), or a student that quantises well "
        f"({', '.join(INT8_FRIENDLY_STUDENTS)}: ReLU, no squeeze-excite)"
    )
