"""The `clip_grad_norm` option (kdedge.train.optim): bounds each step's total gradient norm (a KD student's
soft term at high temperature approaches logit regression, whose gradients grow with the teacher's logits)."""

from __future__ import annotations

import os

import pytest
import torch

from kdedge.data.load import load_data
from kdedge.data.types import Split
from kdedge.models.builders import build_model
from kdedge.recipe import DistillConfig, StageConfig
from kdedge.train.loop import Context, fit

KD = DistillConfig(loss="hinton", alpha=0.9, temperature=20.0)


@pytest.fixture(scope="module")
def mnist_subset() -> Split:
    """The first 1,000 real MNIST training images."""
    return load_data("mnist", os.environ["KDEDGE_DATA"]).train.subset(torch.arange(1000))


def _one_step_change(split: Split, clip: float | None) -> float:
    """L2 norm of the parameter change of one plain-SGD step (lr 1, no momentum) on the whole split."""
    torch.manual_seed(0)
    student = build_model("mlp", 10, 1, 28, {"hidden": [32]})
    before = torch.cat([p.detach().flatten().clone() for p in student.parameters()])
    cfg = StageConfig(model="mlp", epochs=1, batch_size=len(split), lr=1.0, momentum=0.0, clip_grad_norm=clip)
    ctx = Context(device=torch.device("cpu"), mean=(0.1307,), std=(0.3081,), num_classes=10)
    fit(student, split, cfg, ctx, teacher=None, distill=KD)
    after = torch.cat([p.detach().flatten() for p in student.parameters()])
    return float((after - before).norm())


def test_clip_bounds_the_step_and_is_off_by_default(mnist_subset: Split) -> None:
    """With lr 1 and no momentum the step IS the gradient: its norm is <= the clip, and larger without."""
    assert _one_step_change(mnist_subset, clip=None) > 0.05
    assert _one_step_change(mnist_subset, clip=0.05) == pytest.approx(0.05, rel=1e-4)
    assert StageConfig(model="mlp").clip_grad_norm is None
