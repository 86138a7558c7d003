"""kdedge.models.dropout.BitDropout: masks with the requested keep rate whose elements do not repeat each
other, nn.Dropout's scaling and gradient, the identity in eval mode, masks a seed reproduces, and an `mlp`
with fast_dropout that is the same net (same weights) as one without."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from kdedge.models.builders import build_model
from kdedge.models.dropout import BitDropout, drop_rate, keep_mask

N = 600_000


@pytest.mark.parametrize("p", [0.2, 0.5, 0.8])
def test_the_keep_rate_is_one_minus_the_rounded_p(p: float) -> None:
    keep = keep_mask((N,), p, torch.Generator().manual_seed(0)).float()
    rate = 1 - drop_rate(p)
    assert abs(drop_rate(p) - p) <= 0.5 / 65536
    assert keep.mean().item() == pytest.approx(rate, abs=5 * math.sqrt(rate * (1 - rate) / N))


@pytest.mark.parametrize("lag", [1, 2, 3, 4])
def test_neighbouring_elements_are_independent(lag: int) -> None:
    """Three elements come from each random word: a piece used twice or a biased top piece would show as
    a joint keep rate off (1 - p)^2 for neighbours within and across words."""
    keep = keep_mask((N,), 0.5, torch.Generator().manual_seed(1)).float()
    both = (keep[:-lag] * keep[lag:]).mean().item()
    assert both == pytest.approx(0.25, abs=5 * math.sqrt(0.25 * 0.75 / N))


def test_a_mask_has_the_shape_asked_for_even_when_not_a_multiple_of_three() -> None:
    assert keep_mask((7, 5), 0.5).shape == (7, 5)
    assert keep_mask((7, 5), 0.5).dtype == torch.bool


def test_training_scales_the_kept_values_and_the_gradient_like_nn_dropout() -> None:
    drop = BitDropout(0.5).train()
    x = torch.rand(64, 300) + 1.0  # no zeros: a zero output means dropped
    x.requires_grad_(True)
    y = drop(x)
    kept = y != 0
    assert torch.equal(y[kept], 2 * x[kept])
    y.sum().backward()
    assert torch.equal(x.grad, 2 * kept.float())
    assert 0.4 < kept.float().mean().item() < 0.6


def test_eval_mode_and_p_zero_are_the_identity() -> None:
    x = torch.randn(8, 10)
    assert BitDropout(0.5).eval()(x) is x
    assert BitDropout(0.0).train()(x) is x


def test_a_seed_reproduces_the_masks() -> None:
    drop, x = BitDropout(0.2).train(), torch.ones(16, 100)
    torch.manual_seed(3)
    first = drop(x)
    torch.manual_seed(3)
    assert torch.equal(drop(x), first)
    assert not torch.equal(drop(x), first)


@pytest.mark.parametrize("p", [-0.1, 1.0, 1 - 1e-7])
def test_a_probability_outside_zero_to_one_is_refused(p: float) -> None:
    with pytest.raises(ValueError, match="dropout probability"):
        BitDropout(p)


def test_an_mlp_with_fast_dropout_is_the_same_net_with_the_same_weights() -> None:
    kwargs = {"hidden": [32, 32], "dropout": 0.5, "input_dropout": 0.2}
    torch.manual_seed(0)
    plain = build_model("mlp", 10, 1, 28, kwargs)
    fast = build_model("mlp", 10, 1, 28, kwargs | {"fast_dropout": True})
    fast.load_state_dict(plain.state_dict())
    assert [type(m) for m in fast if not isinstance(m, BitDropout)] == [
        type(m) for m in plain if not isinstance(m, nn.Dropout)
    ]
    assert sum(isinstance(m, BitDropout) for m in fast) == 3
    images = torch.rand(4, 1, 28, 28)
    assert torch.equal(fast.eval()(images), plain.eval()(images))


def test_an_exported_fast_dropout_mlp_has_no_random_op() -> None:
    """Export traces eval mode, where BitDropout is the identity: the graph is the plain net's."""
    model = build_model("mlp", 10, 1, 8, {"hidden": [16], "dropout": 0.5, "fast_dropout": True}).eval()
    images = torch.rand(2, 1, 8, 8)
    program = torch.export.export(model, (images,))
    targets = " ".join(str(node.target) for node in program.graph.nodes)
    assert "random" not in targets and "bernoulli" not in targets and "linear" in targets
    assert torch.equal(program.module()(images), model(images))
