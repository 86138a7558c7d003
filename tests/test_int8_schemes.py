"""int8 schemes: every scheme name reaches onnxruntime's quantiser with its settings, the
"-gemm" schemes leave LayerNorm/GELU/Add in fp32 and give MatMulIntegerToFloat, "s7" weights are 7-bit,
and `kdedge export --int8-scheme` records the name in the file. Tiny models: seconds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from export_helpers import make_exported_run

from kdedge.errors import InputError
from kdedge.export import INT8_SCHEMES, read_metadata
from kdedge.export.convert import export_fp32, to_int8
from kdedge.export.int8_schemes import GEMM_OPS, SCHEMES, quantize_static_options
from kdedge.export.options import resolve_settings
from kdedge.models.builders import build_model
from kdedge.recipe import validate_recipe

CHW = (3, 32, 32)
TINY_CONVNEXT = {"depths": [1, 1, 1, 1], "dims": [16, 32, 64, 128]}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_every_scheme_name_has_quantiser_settings():
    assert set(INT8_SCHEMES) == set(SCHEMES) and INT8_SCHEMES[0] == "u8s8"  # u8s8 stays the default
    assert quantize_static_options("u8s8") == {
        "activation_type": "QUInt8",
        "weight_type": "QInt8",
        "reduce_range": False,
    }
    assert quantize_static_options("s8s8")["activation_type"] == "QInt8"
    assert quantize_static_options("u8s7") == {
        "activation_type": "QUInt8",
        "weight_type": "QInt8",
        "reduce_range": True,
    }
    gemm = quantize_static_options("u8s7-gemm")
    assert gemm["op_types_to_quantize"] == list(GEMM_OPS) == ["Conv", "MatMul", "Gemm"]
    assert gemm["extra_options"] == {"OpTypesToExcludeOutputQuantization": ["MatMul", "Gemm"]}
    assert gemm["reduce_range"] and not quantize_static_options("u8s8-gemm")["reduce_range"]
    # each call returns fresh containers: a caller editing them cannot change the table
    quantize_static_options("u8s8-gemm")["op_types_to_quantize"].append("Add")
    assert quantize_static_options("u8s8-gemm")["op_types_to_quantize"] == list(GEMM_OPS)


def test_settings_accept_every_scheme_and_refuse_others_in_one_line():
    recipe = validate_recipe(
        {"name": "s", "data": {"name": "mnist"}, "student": {"model": "mlp"}, "distillation": {"loss": "none"}}
    )
    for scheme in INT8_SCHEMES:
        assert resolve_settings(recipe, {"int8_scheme": scheme}).int8_scheme == scheme
    assert resolve_settings(recipe, {}).int8_scheme == "u8s8"
    with pytest.raises(InputError) as err:
        resolve_settings(recipe, {"int8_scheme": "u8s9"})
    assert "\n" not in str(err.value) and all(s in str(err.value) for s in INT8_SCHEMES)


@pytest.fixture(scope="module")
def convnext_files(tmp_path_factory) -> dict[str, Path]:
    """A tiny ConvNeXt (LayerNorm, GELU, MatMul, depthwise Conv) as fp32 and int8 in three schemes."""
    folder = tmp_path_factory.mktemp("schemes")
    torch.manual_seed(0)
    fp32 = folder / "convnext.fp32.onnx"
    export_fp32(build_model("convnext_tiny", 5, 3, 32, TINY_CONVNEXT).eval(), CHW, fp32, opset=20)
    calibration = np.random.default_rng(0).standard_normal((16, *CHW), dtype=np.float32)
    files = {"fp32": fp32}
    for scheme in ("u8s8", "u8s8-gemm", "u8s7-gemm"):
        files[scheme] = folder / f"convnext.{scheme}.onnx"
        to_int8(fp32, files[scheme], calibration, scheme, folder)
    return files


def _dq_consumers(path: Path) -> set[str]:
    """Op types that read a DequantizeLinear output."""
    graph = onnx.load(str(path)).graph
    dq_out = {n.output[0] for n in graph.node if n.op_type == "DequantizeLinear"}
    return {n.op_type for n in graph.node if any(i in dq_out for i in n.input)}


def _weights(path: Path) -> list[np.ndarray]:
    return [
        onnx.numpy_helper.to_array(i).astype(np.int32)
        for i in onnx.load(str(path)).graph.initializer
        if i.data_type == onnx.TensorProto.INT8 and i.dims
    ]


def _optimised_ops(path: Path, folder: Path) -> set[str]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.optimized_model_filepath = str(folder / f"{path.stem}.optimised.onnx")
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return {n.op_type for n in onnx.load(options.optimized_model_filepath).graph.node}


def test_gemm_schemes_quantise_only_conv_matmul_gemm(convnext_files, tmp_path: Path):
    float_ops = {"LayerNormalization", "Gelu", "Mul"}
    assert float_ops <= _dq_consumers(convnext_files["u8s8"])  # u8s8: a Q/DQ pair in front of everything
    for scheme in ("u8s8-gemm", "u8s7-gemm"):
        path = convnext_files[scheme]
        # LayerNorm, GELU and the layer-scale Mul read fp32 tensors (a Conv's DQ output feeds Transpose/Add)
        assert set(GEMM_OPS[:2]) <= _dq_consumers(path) and not float_ops & _dq_consumers(path)
        graph = onnx.load(str(path)).graph
        matmul_out = {n.output[0] for n in graph.node if n.op_type == "MatMul"}
        assert matmul_out and not any(n.op_type == "QuantizeLinear" and n.input[0] in matmul_out for n in graph.node)
        assert "MatMulIntegerToFloat" in _optimised_ops(path, tmp_path)  # one int8 kernel, float out
    assert "MatMulIntegerToFloat" not in _optimised_ops(convnext_files["u8s8"], tmp_path)


def test_s7_weights_are_7_bit_and_s8_weights_use_the_full_range(convnext_files):
    seven = _weights(convnext_files["u8s7-gemm"])
    assert seven and max(int(np.abs(w).max()) for w in seven) == 64  # [-64, 64]: 2 x 255 x 64 < 2**15
    assert max(int(np.abs(w).max()) for w in _weights(convnext_files["u8s8-gemm"])) == 127


def test_gemm_scheme_logits_stay_close_to_fp32(convnext_files):
    images = np.random.default_rng(1).standard_normal((8, *CHW), dtype=np.float32)
    run = {k: ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]) for k, p in convnext_files.items()}
    reference = run["fp32"].run(None, {"images": images})[0]
    for scheme in ("u8s8-gemm", "u8s7-gemm"):
        out = run[scheme].run(None, {"images": images})[0]
        assert out.shape == reference.shape
        assert np.sqrt(((out - reference) ** 2).mean()) < 0.2 * np.sqrt((reference**2).mean())


def test_export_records_the_scheme_in_the_file(data_root: Path, tmp_path: Path):
    _, rows = make_exported_run(
        tmp_path / "run",
        data_root,
        "mlp",
        "int8",
        export_options={"int8_scheme": "u8s7-gemm", "calibration_images": 32, "min_top1_agreement": 0.9},
        model_kwargs={"hidden": [64]},
        train_steps=200,
        test_limit=200,
    )
    assert [r.status for r in rows] == ["ok"]
    meta = read_metadata(rows[0].path)
    assert meta["kdedge.int8_scheme"] == "u8s7-gemm" and meta["kdedge.precision"] == "int8"
    assert all(int(np.abs(w).max()) <= 64 for w in _weights(Path(rows[0].path)))


def test_recipe_schema_offers_exactly_the_export_schemes() -> None:
    """recipe.py may not import kdedge.export (data flows export -> recipe), so the names are listed twice."""
    import typing

    from kdedge.export import INT8_SCHEMES
    from kdedge.recipe import ExportConfig

    assert typing.get_args(ExportConfig.model_fields["int8_scheme"].annotation) == INT8_SCHEMES
