"""`kdedge check FILE.onnx` on the fp32 and int8 files of one real MNIST run (onnxruntime, OpenVINO, OpenCV DNN,
tract: agrees / refused with the runtime's line / not installed), and the export's HardSigmoid fix that makes
OpenCV compute squeeze-excite blocks correctly."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from export_helpers import make_exported_run
from torch import nn
from torch.nn import functional as F

from kdedge.export.compat import check_consumers
from kdedge.export.convert import export_fp32, tidy_onnx
from kdedge.runtime import consumers

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def onnx_run(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run, _ = make_exported_run(
        tmp_path_factory.mktemp("consumers") / "run",
        data_root,
        "mlp",
        "fp32,int8",
        model_kwargs={"hidden": [32]},
        train_steps=150,
        test_limit=100,
    )
    return run


def _need(*modules: str) -> None:
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"not installed: {missing} (pip install -e '.[consumers,openvino]')")


def test_check_fp32_and_int8_files_of_one_run(onnx_run: Path, kdedge):
    _need("cv2", "tract", "openvino")
    results = {}
    for precision in ("fp32", "int8"):
        done = kdedge("check", onnx_run / "export" / f"student.{precision}.onnx", "--json")
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        assert report["images"].startswith("the first 100 test images of mnist")
        results[precision] = {row["runtime"]: row for row in report["rows"]}
    assert [r for r in results["fp32"]] == list(consumers.CONSUMERS)
    assert all(row["status"] == "agrees" and row["agreement"] == 1.0 for row in results["fp32"].values())
    assert max(row["max_abs_diff"] for row in results["fp32"].values()) < 1e-3
    int8 = results["int8"]
    assert int8["onnxruntime"]["status"] == int8["tract"]["status"] == "agrees"
    # OpenCV 5.1 cannot run a QDQ file: the row carries its own assertion line
    assert int8["opencv"]["status"] == "refused" and "bufidx >= 0" in int8["opencv"]["note"]


def test_absent_runtime_is_not_installed(onnx_run: Path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tract" else real(name, *a))
    images = np.zeros((4, 1, 28, 28), np.float32)
    rows = {r.runtime: r for r in check_consumers(onnx_run / "export" / "student.fp32.onnx", images)}
    assert rows["tract"].status == "not installed" and "kdedge-distill[consumers]" in rows["tract"].note
    assert rows["onnxruntime"].status == "agrees"


def test_check_wants_real_images(tmp_path: Path, onnx_run: Path, kdedge):
    lone = tmp_path / "model.onnx"
    lone.write_bytes((onnx_run / "export" / "student.fp32.onnx").read_bytes())
    done = kdedge("check", lone)
    assert done.returncode == 2 and "give some with --images DIR" in done.stderr


class SqueezeExcite(nn.Module):
    """A conv and MobileNetV3's squeeze-excite gate: x * hardsigmoid(conv(relu(conv(mean(x)))))."""

    def __init__(self, channels: int = 8) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.reduce, self.expand = nn.Conv2d(channels, 4, 1), nn.Conv2d(4, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv(x))
        gate = self.expand(F.relu(self.reduce(x.mean((2, 3), keepdim=True))))
        return (x * F.hardsigmoid(gate)).flatten(1)


def test_hardsigmoid_default_beta_dropped_so_opencv_agrees(tmp_path: Path):
    _need("cv2")
    torch.manual_seed(0)
    model, path = SqueezeExcite().eval(), tmp_path / "se.onnx"
    export_fp32(model, (8, 4, 4), path, 20)
    images = torch.randn(3, 8, 4, 4)
    expected = model(images).detach().numpy()
    # as torch writes it (alpha=1/6 and beta=0.5 both present), OpenCV fuses it into HardSwish(gate): the
    # (N, C, H, W) feature map becomes (N, C, 1, 1), and the Flatten after it fails or computes wrong logits
    try:
        wrong = consumers.logits_of("opencv", path, images.numpy())
        assert wrong.shape != expected.shape or not np.allclose(wrong, expected, atol=1e-3)
    except Exception as err:  # noqa: BLE001 - cv2.error
        assert "reshape" in str(err)
    tidy_onnx(path)
    gates = [n for n in onnx.load(str(path)).graph.node if n.op_type == "HardSigmoid"]
    assert gates and all(a.name != "beta" for n in gates for a in n.attribute)
    for name in ("onnxruntime", "opencv"):
        np.testing.assert_allclose(consumers.logits_of(name, path, images.numpy()), expected, atol=1e-5)
