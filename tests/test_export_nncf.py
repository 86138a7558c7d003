"""`kdedge export --int8-method nncf`: NNCF's int8 QDQ file next to onnxruntime's on the same briefly trained
MNIST MLP, same calibration digits, same checks and metadata; and the one-line errors (nncf missing,
--int8-scheme with nncf, unknown method). The end-to-end tests skip without nncf
(kdedge-distill[openvino])."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import onnx
import pytest
from cli_helpers import run_kdedge
from export_helpers import export_checked, make_run

from kdedge.errors import InputError
from kdedge.export import read_metadata
from kdedge.export.nncf_int8 import NNCF_MISSING, activation_scheme

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def mnist_run(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The MLP of test_export's mnist_export (64 hidden units, 300 Adam steps), 500 test digits."""
    return make_run(
        tmp_path_factory.mktemp("nncf") / "run",
        data_root,
        "mlp",
        model_kwargs={"hidden": [64]},
        train_steps=300,
        test_limit=500,
    )


@pytest.fixture(scope="module")
def both_int8(mnist_run: Path, data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """{'ort': {precision: row}, 'nncf': ...}: the same run exported twice (two copies), int8 calibrated on
    the same 64 training digits."""
    pytest.importorskip("nncf", reason="nncf is not installed (pip install 'kdedge-distill[openvino]')")
    rows = {}
    for method in ("ort", "nncf"):
        run = tmp_path_factory.mktemp(method) / "run"
        shutil.copytree(mnist_run, run)
        rows[method] = {
            r.precision: r
            for r in export_checked(
                run, "student", "fp32,int8", data_root=str(data_root), calibration_images=64, int8_method=method
            )
        }
    return rows


def test_nncf_int8_is_a_checked_qdq_file_with_per_channel_s8_weights(both_int8):
    row = both_int8["nncf"]["int8"]
    assert row.status == "ok"
    onnx.checker.check_model(row.path, full_check=True)
    model = onnx.load(row.path)
    ops = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops and "DynamicQuantizeLinear" not in ops
    inits = {i.name: i for i in model.graph.initializer}
    weights = [
        (inits[n.input[0]], inits[n.input[1]])
        for n in model.graph.node
        if n.op_type == "DequantizeLinear" and n.input[0] in inits
    ]
    assert len(weights) == 2  # both Gemm weights stored as int8, one scale per output channel
    assert all(w.data_type == onnx.TensorProto.INT8 and s.dims[0] == w.dims[0] > 1 for w, s in weights)
    assert both_int8["nncf"]["fp32"].size_mb / row.size_mb > 3.0


def test_metadata_records_method_quantizer_and_the_scheme_nncf_chose(both_int8):
    import nncf
    import onnxruntime

    ort_meta = read_metadata(both_int8["ort"]["int8"].path)
    nncf_meta = read_metadata(both_int8["nncf"]["int8"].path)
    assert ort_meta["kdedge.int8_method"] == "ort" and ort_meta["kdedge.int8_scheme"] == "u8s8"
    assert ort_meta["kdedge.int8_quantizer"] == f"onnxruntime {onnxruntime.__version__}"
    assert nncf_meta["kdedge.int8_method"] == "nncf"
    assert nncf_meta["kdedge.int8_quantizer"] == f"nncf {nncf.__version__}"
    # normalised digits are signed (s8), the hidden layer's input follows a ReLU (u8)
    assert nncf_meta["kdedge.int8_scheme"] == "mixed" == activation_scheme(Path(both_int8["nncf"]["int8"].path))
    assert nncf_meta["kdedge.calibration_images"] == ort_meta["kdedge.calibration_images"] == "64"
    assert nncf_meta["kdedge.precision"] == "int8"
    assert float(nncf_meta["kdedge.test_accuracy"]) == pytest.approx(both_int8["nncf"]["int8"].test_accuracy)


def test_nncf_and_ort_int8_keep_fp32_accuracy(both_int8):
    fp32 = both_int8["ort"]["fp32"]
    assert both_int8["nncf"]["fp32"].test_accuracy == fp32.test_accuracy  # same weights in both copies
    for method in ("ort", "nncf"):
        int8 = both_int8[method]["int8"]
        assert int8.test_count == 500 and int8.test_agreement >= 0.97, (method, int8)
        assert abs(int8.test_accuracy - fp32.test_accuracy) < 0.03, (method, int8)


def test_nncf_missing_is_one_line_exit_2_and_writes_nothing(mnist_run, tmp_path, monkeypatch):
    run = tmp_path / "run"
    shutil.copytree(mnist_run, run)
    monkeypatch.setitem(sys.modules, "nncf", None)  # how Python sees a package that is not installed
    code, _, err = run_kdedge("export", str(run), "--int8-method", "nncf")
    assert code == 2 and err.strip() == f"error: {NNCF_MISSING}"
    assert not (run / "export").exists()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (
            ["--int8-method", "nncf", "--int8-scheme", "s8s8"],
            "--int8-scheme applies to --int8-method ort only",
        ),
        (["--int8-method", "ncnf"], "unknown method 'ncnf'; did you mean 'nncf'? allowed: ort, nncf"),
    ],
)
def test_bad_int8_method_options_are_one_line_exit_2(mnist_run, args, words):
    code, _, err = run_kdedge("export", str(mnist_run), *args)
    assert code == 2 and words in err and err.strip().count("\n") == 0


def test_export_run_raises_input_error_before_any_work(mnist_run, tmp_path, monkeypatch):
    run = tmp_path / "run"
    shutil.copytree(mnist_run, run)
    monkeypatch.setitem(sys.modules, "nncf", None)
    with pytest.raises(InputError, match="pip install 'kdedge-distill\\[openvino\\]'"):
        export_checked(run, "student", "fp32,int8", int8_method="nncf")
    assert not (run / "export").exists()
