"""kdedge.export.executorch_convert: a CNN's ExecuTorch `.pte` takes the batch bound export asks for in one
call (1024 images at small sizes), not the 2..15 that XNNPACK's re-tracing passes used to narrow it to; fp32
and int8."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("executorch", reason="needs the executorch extra (make edge)")

from kdedge.export.edge_common import ConvertJob  # noqa: E402
from kdedge.export.executorch_convert import MAX_BATCH, batch_bound, convert  # noqa: E402
from kdedge.runtime.edge_runners import ExecuTorchRunner  # noqa: E402


def test_the_bound_is_1024_images_or_64_mib_of_input() -> None:
    assert batch_bound((1, 28, 28)) == batch_bound((3, 32, 32)) == MAX_BATCH
    assert batch_bound((3, 224, 224)) == 111  # 111 x 3x224x224 float32 <= 64 MiB
    assert batch_bound((3, 2048, 2048)) == 8  # never under the parity check's batch 7


def _conv_bn_net() -> nn.Module:
    """A 3x3 convolution (the op whose backend query narrowed the range) + batch norm + a linear head."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 5)
    )
    net[1].running_mean.uniform_(-0.5, 0.5)
    net[1].running_var.uniform_(0.5, 2.0)
    return net.eval()


@pytest.mark.parametrize("precision", ["fp32", pytest.param("int8", marks=pytest.mark.slow)])
def test_a_cnn_pte_takes_the_whole_bound_in_one_call(tmp_path: Path, precision: str) -> None:
    net, chw = _conv_bn_net(), (3, 8, 8)
    calibration = np.random.default_rng(0).standard_normal((32, *chw)).astype(np.float32)
    path = tmp_path / f"net.{precision}.pte"
    convert(ConvertJob(net, chw, precision, calibration if precision == "int8" else calibration[:0], path))
    runner = ExecuTorchRunner(path, threads=1)
    assert runner.max_batch == MAX_BATCH  # was 15
    images = torch.randn(MAX_BATCH, *chw, generator=torch.Generator().manual_seed(1))
    logits = runner.method.execute([images])[0]  # one call, no chunks
    with torch.inference_mode():
        expected = net(images)
    agreement = float((logits.argmax(1) == expected.argmax(1)).float().mean())
    assert agreement >= (0.9999 if precision == "fp32" else 0.9)
