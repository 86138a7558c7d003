"""kdedge export: parity per model family, int8 calibrated on real data, metadata contract, atomicity,
bad input. Models are tiny (small inputs, shallow timm variants of the same architecture) so CI stays fast."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from cli_helpers import checksums, run_kdedge
from export_helpers import export_checked, make_exported_run, make_run
from torch import nn

from kdedge.errors import InputError, RuntimeFailure
from kdedge.export import read_metadata
from kdedge.export.convert import TRACE_BATCH, export_fp32
from kdedge.export.verify import PARITY_BATCHES, check, torch_parity
from kdedge.models import MODELS
from kdedge.models.builders import build_model

# (model, in_channels, image_size, model_kwargs): every family a recipe can build. The timm families
# keep their blocks (ConvNeXt / Swin-window attention) with fewer and narrower stages.
FAMILIES = [
    ("mlp", 1, 28, {"hidden": [32, 16]}),
    ("mnist_cnn", 1, 28, {"width": 8}),
    ("small_cnn", 3, 32, {"width": 8}),
    ("alexnet_cifar", 3, 32, {}),
    ("cifar_resnet18", 3, 32, {}),
    ("convnext_tiny", 3, 32, {"depths": [1, 1, 1, 1], "dims": [16, 32, 64, 128]}),
    ("swin_tiny_patch4_window7_224", 3, 64, {"depths": [1, 1, 1, 1], "embed_dim": 24}),
    pytest.param("cifar_resnet50", 3, 32, {}, marks=pytest.mark.slow),
    pytest.param("mobilenetv3_large_100", 3, 32, {}, marks=pytest.mark.slow),
    pytest.param("efficientnet_b0", 3, 32, {}, marks=pytest.mark.slow),
]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


CONTRACT_KEYS = (
    "version",
    "model",
    "stage",
    "precision",
    "input_size",
    "in_channels",
    "layout",
    "mean",
    "std",
    "class_names",
    "dataset",
    "recipe_sha",
    "test_accuracy",
)


@pytest.mark.parametrize(("name", "channels", "size", "kwargs"), FAMILIES)
def test_fp32_parity_at_two_untraced_batch_sizes(tmp_path: Path, name: str, channels: int, size: int, kwargs: dict):
    torch.manual_seed(0)
    model = build_model(name, 10, channels, size, kwargs).eval()
    path = tmp_path / "model.onnx"
    export_fp32(model, (channels, size, size), path, opset=20)
    check(path)
    parity = torch_parity(model, path, (channels, size, size))
    assert TRACE_BATCH not in PARITY_BATCHES
    assert parity.rel_diff < 1e-4, parity
    assert parity.agreement == 1.0
    graph = onnx.load(str(path)).graph
    assert [i.name for i in graph.input] == ["images"] and [o.name for o in graph.output] == ["logits"]
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_param  # symbolic (dynamic) batch dimension


@pytest.fixture(scope="module")
def mnist_export(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    """A briefly trained MNIST MLP exported to fp32/fp16/int8 (int8 calibrated on 64 real training digits)."""
    return make_exported_run(
        tmp_path_factory.mktemp("mnist") / "run",
        data_root,
        "mlp",
        "fp32,fp16,int8",
        models="both",
        export_options={"calibration_images": 64},
        model_kwargs={"hidden": [64]},
        train_steps=300,
        test_limit=500,
    )


def test_export_writes_checked_self_describing_files(mnist_export):
    run, rows = mnist_export
    assert {r.name for r in rows} == {"student.fp32", "student.fp16", "student.int8"}
    assert sorted(p.name for p in (run / "export").iterdir()) == [f"student.{p}.onnx" for p in ("fp16", "fp32", "int8")]
    summary = json.loads((run / "summary.json").read_text())["data"]
    for row in rows:
        path = Path(row.path)
        onnx.checker.check_model(str(path), full_check=True)
        meta = read_metadata(path)
        assert all(f"kdedge.{key}" in meta for key in CONTRACT_KEYS), sorted(meta)
        assert meta["kdedge.precision"] == row.precision and meta["kdedge.stage"] == "student"
        assert meta["kdedge.input_size"] == "28,28" and meta["kdedge.in_channels"] == "1"
        assert json.loads(meta["kdedge.mean"]) == summary["mean"]
        assert json.loads(meta["kdedge.class_names"]) == summary["class_names"]
        assert meta["kdedge.layout"] == "NCHW" and meta["kdedge.dataset"] == "mnist"
        assert float(meta["kdedge.test_accuracy"]) == pytest.approx(row.test_accuracy, abs=1e-6)
    assert rows[0].test_accuracy > 0.8  # the trained MLP, measured by onnxruntime on 500 real test digits


def test_metadata_accuracy_is_measured_on_the_file(mnist_export, data_root: Path):
    """Re-score the int8 file here, independently, on the same 500 test digits."""
    from kdedge.data.types import normalize
    from kdedge.files.rundir import RunDir
    from kdedge.runtime.onnx_meta import open_session
    from kdedge.train.pipeline import prepare_data

    run, rows = mnist_export
    int8 = next(r for r in rows if r.precision == "int8")
    bundle = prepare_data(RunDir(run).read_recipe(), str(data_root))
    images = normalize(bundle.test.images, bundle.mean, bundle.std).numpy()
    logits = open_session(int8.path).run(None, {"images": images})[0]
    measured = float((logits.argmax(1) == bundle.test.labels.numpy()).mean())
    assert len(images) == 500
    assert float(read_metadata(int8.path)["kdedge.test_accuracy"]) == pytest.approx(measured, abs=1e-6)


def _activation_zero_point_types(path: str) -> set[int]:
    model = onnx.load(path)
    inits = {i.name: i for i in model.graph.initializer}
    types = set()
    for node in model.graph.node:
        if node.op_type == "QuantizeLinear" and len(node.input) > 2 and node.input[2] in inits:
            types.add(inits[node.input[2]].data_type)
    return types


def test_int8_is_static_qdq_per_channel_u8s8_and_smaller(mnist_export):
    _, rows = mnist_export
    by = {r.precision: r for r in rows}
    model = onnx.load(by["int8"].path)
    ops = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops and "DynamicQuantizeLinear" not in ops
    inits = {i.name: i for i in model.graph.initializer}
    weight_scales = [
        inits[n.input[1]]
        for n in model.graph.node
        if n.op_type == "DequantizeLinear"
        and n.input[0] in inits
        and inits[n.input[0]].data_type == onnx.TensorProto.INT8
    ]
    assert weight_scales and all(len(s.dims) == 1 and s.dims[0] > 1 for s in weight_scales)  # per channel
    assert _activation_zero_point_types(by["int8"].path) == {onnx.TensorProto.UINT8}
    assert read_metadata(by["int8"].path)["kdedge.int8_scheme"] == "u8s8"
    assert by["fp32"].size_mb / by["int8"].size_mb > 3.0
    assert by["fp32"].size_mb / by["fp16"].size_mb > 1.8
    for precision in ("fp16", "int8"):
        assert by[precision].test_agreement >= 0.97
        assert abs(by[precision].test_accuracy - by["fp32"].test_accuracy) < 0.03


def test_s8s8_scheme_on_real_cifar_calibration(data_root: Path, tmp_path: Path):
    run, rows = make_exported_run(
        tmp_path / "run",
        data_root,
        "small_cnn",
        "int8",
        export_options={"calibration_images": 32, "int8_scheme": "s8s8", "min_top1_agreement": 0.9},
        dataset="cifar10",
        model_kwargs={"width": 8},
        train_steps=150,
        test_limit=200,
    )
    assert [r.name for r in rows] == ["student.int8"] and not (run / "export" / "student.fp32.onnx").exists()
    assert _activation_zero_point_types(rows[0].path) == {onnx.TensorProto.INT8}
    meta = read_metadata(rows[0].path)
    assert meta["kdedge.int8_scheme"] == "s8s8" and meta["kdedge.calibration_images"] == "32"
    assert meta["kdedge.input_size"] == "32,32" and json.loads(meta["kdedge.class_names"])[0] == "airplane"


class _DataDependent(nn.Module):
    """Branches on the VALUES of its input: torch.export cannot trace that into one graph."""

    def __init__(self, num_classes: int, in_channels: int, image_size: int) -> None:
        super().__init__()
        self.head = nn.Linear(in_channels * image_size * image_size, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        logits = self.head(images.flatten(1))
        return logits if images.sum() > 0 else -logits


def test_a_model_that_cannot_export_leaves_nothing(data_root: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setitem(MODELS._builders, "data_dependent", _DataDependent)
    run = make_run(tmp_path / "run", data_root, "data_dependent", test_limit=50)
    (run / "export").mkdir()
    good = run / "export" / "student.fp32.onnx"
    good.write_bytes(b"a good file from an earlier export")
    with pytest.raises(RuntimeFailure, match="student.fp32.*cannot export"):
        export_checked(run, "student", "fp32,int8", data_root=str(data_root))
    assert good.read_bytes() == b"a good file from an earlier export"
    assert sorted(p.name for p in (run / "export").iterdir()) == ["student.fp32.onnx"]  # no temp files left


def test_failed_parity_or_agreement_writes_no_file(mnist_export, data_root: Path, tmp_path: Path, monkeypatch):
    import shutil

    from kdedge.export import runner
    from kdedge.export.verify import Parity

    run = tmp_path / "run"
    shutil.copytree(mnist_export[0], run, ignore=shutil.ignore_patterns("export"))
    monkeypatch.setattr(runner, "agreement", lambda a, b: 0.5)
    with pytest.raises(RuntimeFailure, match="student.int8.*agreement"):
        export_checked(run, "student", "fp32,int8", data_root=str(data_root), limit=50)
    assert sorted(p.name for p in (run / "export").iterdir()) == ["student.fp32.onnx"]
    monkeypatch.setattr(runner, "torch_parity", lambda *a: Parity(0.5, 0.01, 1.0))
    with pytest.raises(RuntimeFailure, match="student.fp32.*fp32_rtol"):
        export_checked(run, "student", "fp32", data_root=str(data_root), limit=50)
    assert sorted(p.name for p in (run / "export").iterdir()) == ["student.fp32.onnx"]


def test_python_api_returns_the_files_that_passed_and_names_the_failed(
    mnist_export, data_root: Path, tmp_path: Path, monkeypatch
):
    """kdedge.export() keeps the rows of the files that passed when another fails (a RuntimeWarning names
    the failed ones, result.failed holds their rows); the CLI still exits 1 with the same line."""
    import shutil

    import kdedge
    from kdedge.export import runner

    run = tmp_path / "run"
    shutil.copytree(mnist_export[0], run, ignore=shutil.ignore_patterns("export"))
    monkeypatch.setattr(runner, "agreement", lambda a, b: 0.5)  # the int8 file fails its check
    with pytest.warns(RuntimeWarning, match="export failed for student.int8"):
        result = kdedge.export(run, "student", "fp32,int8", data_root=str(data_root), limit=50, quiet=True)
    assert [(r.name, r.status) for r in result] == [("student.fp32", "ok")]
    assert Path(result[0].path) == run / "export" / "student.fp32.onnx" and Path(result[0].path).is_file()
    assert [r.name for r in result.failed] == ["student.int8"] and "agreement" in result.failed[0].status
    assert result.message.startswith("export failed for student.int8")
    code, _, err = run_kdedge("export", run, "--model", "student", "--precision", "fp32,int8", "--limit", "50", "-q")
    assert code == 1 and err.strip() == f"error: {result.message}"


def test_force_replaces_the_whole_export_and_a_failed_one_keeps_the_old(
    mnist_export, data_root: Path, tmp_path: Path, monkeypatch
):
    """--force: RUN/export ends up holding only the new files (the old fp16/int8 and a stale deploy/
    file do not linger); a forced export that fails leaves the previous export exactly as it was."""
    import shutil

    from kdedge.export import runner

    run = tmp_path / "run"
    shutil.copytree(mnist_export[0], run)
    (run / "export" / "deploy").mkdir()
    (run / "export" / "deploy" / "student.cpu-x86.onnx").write_bytes(b"chosen from the old export")
    code, _, err = run_kdedge(
        "export",
        run,
        "--model",
        "student",
        "--precision",
        "fp32",
        "--limit",
        "50",
        "--data-root",
        data_root,
        "--force",
        "-q",
    )
    assert code == 0, err
    assert sorted(p.name for p in (run / "export").iterdir()) == ["student.fp32.onnx"]
    assert sorted(p.name for p in run.iterdir() if p.name.startswith(".export")) == []  # no staging left
    good = checksums(run / "export")
    stamps = {p.name: p.stat().st_mtime_ns for p in (run / "export").iterdir()}
    monkeypatch.setattr(runner, "agreement", lambda a, b: 0.5)  # the int8 file fails its check
    with pytest.raises(RuntimeFailure, match="student.int8.*agreement.*left as it was"):
        export_checked(run, "student", "fp32,int8", data_root=str(data_root), limit=50, force=True)
    assert checksums(run / "export") == good  # not even the new fp32 file, which passed
    assert stamps == {p.name: p.stat().st_mtime_ns for p in (run / "export").iterdir()}
    assert sorted(p.name for p in run.iterdir() if p.name.startswith(".export")) == []


def test_cli_bad_input_is_one_line_exit_2(mnist_export, tmp_path: Path, data_root: Path):
    run = mnist_export[0]
    code, _, err = run_kdedge("export", run, "--precision", "fp32,int4")
    assert code == 2 and "unknown precision 'int4'" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_kdedge("export", run, "--int8-scheme", "u8u8")
    assert code == 2 and "--int8-scheme" in err
    code, _, err = run_kdedge("export", run, "--model", "teacher")
    assert code == 2 and "no trained teacher" in err
    empty = tmp_path / "no-weights"
    empty.mkdir()
    (empty / "recipe.yaml").write_text((run / "recipe.yaml").read_text())
    code, _, err = run_kdedge("export", empty)
    assert code == 2 and "no trained" in err and "Traceback" not in err
    assert not (empty / "export").exists()


def test_cli_export_prints_table(mnist_export, tmp_path: Path, data_root: Path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(mnist_export[0], run, ignore=shutil.ignore_patterns("export"))
    code, out, err = run_kdedge("export", run, "--precision", "fp16", "--limit", "100", "--data-root", data_root)
    assert code == 0, err
    assert "student.fp16" in out and "checker ok" in out
    assert sorted(p.name for p in (run / "export").iterdir()) == ["student.fp16.onnx"]
    assert np.isfinite(float(read_metadata(run / "export" / "student.fp16.onnx")["kdedge.test_accuracy"]))


def test_read_metadata_refuses_non_onnx(tmp_path: Path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00garbage")
    with pytest.raises(InputError, match="not a valid ONNX"):
        read_metadata(bad)
