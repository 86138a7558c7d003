"""The int8 schemes of `kdedge export --int8-scheme` (onnxruntime's quantize_static, QDQ format, per-channel
weights, MinMax calibration): what each quantises and with which types. Pure data, no onnxruntime import,
so options can be checked before any work. The scheme's name is written into the file's metadata
(`kdedge.int8_scheme`).

- u8s8: every operator onnxruntime can quantise (Conv, MatMul, Add, Mul, LayerNorm, Transpose, ...),
  u8 activations, s8 weights. kdedge's default; the right one for ReLU conv nets (ResNet18: x1.97 over
  fp32 vs x1.90 for u8s8-gemm, AVX2 kernels).
- u8s7: u8s8 with 7-bit weights in [-64, 64] (onnxruntime's reduce_range). On x86 CPUs WITHOUT VNNI
  (AVX2 only) the u8s8 kernels add pairs of u8 x s8 products in int16 (vpmaddubsw), which saturates;
  7-bit weights cannot (2 x 255 x 64 < 2**15). Same kernels, same speed; on AVX2 it cut the logit error
  of ConvNeXt-T 4x (bench/int8_settings.py).
- s8s8: s8 activations, for ARM; on x86 onnxruntime has no s8s8 kernel before AVX-VNNI-INT8 and is
  much slower than u8s8 (ConvNeXt-T x1.07 over fp32 vs x1.53, AVX2 kernels).
- u8s8-gemm: only Conv, MatMul and Gemm are quantised and MatMul/Gemm outputs stay float, so onnxruntime
  runs each MatMul as one MatMulIntegerToFloat and LayerNorm, GELU, Softmax and the residual Adds run in
  fp32 with no Q/DQ pair around them. For ConvNeXt and Swin (MatMul-dominated, LayerNorm/GELU between
  the MatMuls): 5-7% faster than u8s8 on AVX2 and on AVX-512 VNNI kernels, and no less accurate.
- u8s7-gemm: u8s8-gemm with 7-bit weights: the one to ship ConvNeXt / Swin with when the x86 CPU it
  will run on may lack VNNI.
"""

from __future__ import annotations

from dataclasses import dataclass

GEMM_OPS = ("Conv", "MatMul", "Gemm")


@dataclass(frozen=True)
class Int8Scheme:
    activation: str  # onnxruntime QuantType name
    weight: str
    reduce_range: bool  # 7-bit weights
    gemm_only: bool  # quantise Conv/MatMul/Gemm only, MatMul/Gemm outputs float


SCHEMES: dict[str, Int8Scheme] = {
    "u8s8": Int8Scheme("QUInt8", "QInt8", reduce_range=False, gemm_only=False),
    "u8s7": Int8Scheme("QUInt8", "QInt8", reduce_range=True, gemm_only=False),
    "s8s8": Int8Scheme("QInt8", "QInt8", reduce_range=False, gemm_only=False),
    "u8s8-gemm": Int8Scheme("QUInt8", "QInt8", reduce_range=False, gemm_only=True),
    "u8s7-gemm": Int8Scheme("QUInt8", "QInt8", reduce_range=True, gemm_only=True),
}


def quantize_static_options(name: str) -> dict:
    """Keyword arguments of onnxruntime.quantization.quantize_static for scheme `name`, with the QuantType
    members given by name (resolve with getattr(QuantType, ...)); format, per-channel and calibration
    method are the same for every scheme and set by the caller."""
    scheme = SCHEMES[name]
    options: dict = {
        "activation_type": scheme.activation,
        "weight_type": scheme.weight,
        "reduce_range": scheme.reduce_range,
    }
    if scheme.gemm_only:
        options["op_types_to_quantize"] = list(GEMM_OPS)
        options["extra_options"] = {"OpTypesToExcludeOutputQuantization": ["MatMul", "Gemm"]}
    return options
