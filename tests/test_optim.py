"""Learning-rate schedules (cosine with warm restarts, linear warm-up), the momentum ramp and dampening, and their
validation."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from kdedge.recipe import Recipe, StageConfig, load_recipe
from kdedge.train.optim import (
    apply_max_norm,
    lr_factor,
    make_optimizer,
    momentum_at,
    set_step_hyperparameters,
    warmup_length,
)


def stage(**kwargs) -> StageConfig:
    return StageConfig(model="mlp", schedule="cosine", **kwargs)


def test_cosine_cycles_restart_at_the_decayed_peak() -> None:
    cfg = stage(epochs=160, cosine_cycles=[100, 60], cycle_decay=0.6)
    steps = 10  # per epoch
    assert lr_factor(cfg, 0, steps) == pytest.approx(1.0)
    assert lr_factor(cfg, 50 * steps, steps) == pytest.approx(0.5)  # half-way down the first cycle
    assert lr_factor(cfg, 100 * steps - 1, steps) < 1e-4  # the first cycle ends near 0 ...
    assert lr_factor(cfg, 100 * steps, steps) == pytest.approx(0.6)  # ... and restarts at 0.6
    assert lr_factor(cfg, 130 * steps, steps) == pytest.approx(0.3)
    assert lr_factor(cfg, 160 * steps, steps) == 0.0
    plain = stage(epochs=100)
    single = stage(epochs=100, cosine_cycles=[100])
    assert all(lr_factor(plain, s, 7) == pytest.approx(lr_factor(single, s, 7)) for s in range(0, 700, 13))


def test_cosine_cycles_are_relative_lengths() -> None:
    """--set epochs=16 on a [100, 60] recipe keeps the shape: the restart lands at epoch 10."""
    cfg = stage(epochs=16, cosine_cycles=[100, 60], cycle_decay=0.6)
    assert lr_factor(cfg, 10 * 5, 5) == pytest.approx(0.6)
    assert lr_factor(cfg, 5 * 5, 5) == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"epochs": 160, "cosine_cycles": [100, 60], "schedule": "step", "step_epochs": 5}, "needs schedule"),
        ({"epochs": 160, "cosine_cycles": [100, 60], "cycle_decay": 1.5}, "less than or equal to 1"),
    ],
)
def test_bad_cycles_are_refused(kwargs: dict, message: str) -> None:
    schedule = kwargs.pop("schedule", "cosine")
    with pytest.raises(ValidationError, match=message):
        StageConfig(model="mlp", schedule=schedule, **kwargs)


def test_momentum_ramps_linearly_then_holds() -> None:
    cfg = StageConfig(model="mlp", momentum=0.99, momentum_start=0.5, momentum_ramp_epochs=500)
    steps = 4  # per epoch
    assert momentum_at(cfg, 0, steps) == pytest.approx(0.5)
    assert momentum_at(cfg, 250 * steps, steps) == pytest.approx(0.745)
    assert momentum_at(cfg, 500 * steps, steps) == pytest.approx(0.99)
    assert momentum_at(cfg, 3000 * steps, steps) == pytest.approx(0.99)
    assert momentum_at(StageConfig(model="mlp", momentum=0.9), 123, steps) == 0.9  # no ramp: constant


def test_ramp_and_dampening_reach_the_optimiser() -> None:
    """set_step_hyperparameters writes the ramped momentum, and dampening = momentum, into every group."""
    cfg = StageConfig(model="mlp", lr=0.5, momentum=0.9, momentum_start=0.5, momentum_ramp_epochs=2, dampening=True)
    optimizer = make_optimizer(torch.nn.Linear(2, 1), cfg)
    assert optimizer.param_groups[0]["momentum"] == pytest.approx(0.5)
    set_step_hyperparameters(optimizer, cfg, step=10, steps_per_epoch=10)  # half-way through the ramp
    assert optimizer.param_groups[0]["momentum"] == pytest.approx(0.7)
    assert optimizer.param_groups[0]["dampening"] == pytest.approx(0.7)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.5)


@pytest.mark.parametrize(("dampening", "step_per_gradient"), [(True, 1.0), (False, 10.0)])
def test_dampening_keeps_the_step_at_lr_times_gradient(dampening: bool, step_per_gradient: float) -> None:
    """Under a constant gradient, sgd with momentum 0.9 settles at a step of lr x g / (1 - 0.9) = 10 lr g;
    with dampening (Hinton et al. 2012's update) at lr x g."""
    layer = torch.nn.Linear(1, 1, bias=False)
    optimizer = make_optimizer(layer, StageConfig(model="mlp", lr=0.01, momentum=0.9, dampening=dampening))
    for _ in range(300):
        before = layer.weight.detach().clone()
        layer.weight.grad = torch.ones_like(layer.weight)
        optimizer.step()
    assert float(before - layer.weight.detach()) == pytest.approx(0.01 * step_per_gradient, rel=1e-3)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"momentum_start": 0.5}, "go together"),
        ({"momentum_ramp_epochs": 10}, "go together"),
        ({"momentum_start": 0.5, "momentum_ramp_epochs": 10, "optimizer": "adam"}, "need optimizer: sgd"),
        ({"dampening": True, "optimizer": "adamw"}, "need optimizer: sgd"),
        ({"dampening": True, "nesterov": True}, "cannot be combined"),
    ],
)
def test_bad_momentum_settings_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        StageConfig(model="mlp", **kwargs)


def test_new_stage_keys_leave_old_fingerprints_alone() -> None:
    """Runs saved before the momentum ramp existed still resume: its keys at their defaults are not
    part of the fingerprint; set, they are."""
    base = {"name": "x", "data": {"name": "mnist"}, "teacher": {"model": "mlp"}}
    plain = Recipe.model_validate(base)
    assert "momentum_start" not in plain.to_dict()["teacher"] and "dampening" not in plain.to_dict()["teacher"]
    ramp = {"model": "mlp", "momentum_start": 0.5, "momentum_ramp_epochs": 5}
    ramped = Recipe.model_validate(base | {"teacher": ramp})
    assert ramped.to_dict()["teacher"]["momentum_start"] == 0.5
    assert ramped.fingerprint() != plain.fingerprint()


def test_max_norm_caps_each_units_incoming_weights() -> None:
    """Rows (one unit's incoming weights) longer than max_norm are scaled to exactly max_norm; shorter rows
    and biases are left alone."""
    layer = torch.nn.Linear(4, 3)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[3.0, 4.0, 0, 0], [0.3, 0.4, 0, 0], [0, 0, 6.0, 8.0]]))
        layer.bias.fill_(9.0)
    apply_max_norm(torch.nn.Sequential(layer), 2.5)
    norms = torch.linalg.vector_norm(layer.weight.detach(), dim=1)
    assert torch.allclose(norms, torch.tensor([2.5, 0.5, 2.5]), atol=1e-5)
    assert torch.allclose(layer.weight.detach()[0], torch.tensor([1.5, 2.0, 0, 0]), atol=1e-5)  # same direction
    assert torch.equal(layer.bias.detach(), torch.full((3,), 9.0))


# -- warm-up -----------------------------------------------------------------------------------------------
def _cifar_stage(**values):
    return load_recipe("cifar10_resnet18").teacher.model_copy(update=values)


def test_warmup_ramps_linearly_then_follows_the_schedule() -> None:
    cfg = _cifar_stage(epochs=20, warmup_epochs=2, schedule="cosine")
    steps = 10
    ramp = [lr_factor(cfg, step, steps) for step in range(20)]
    assert ramp[0] == pytest.approx(1 / 20) and ramp[19] == pytest.approx(1.0)
    assert all(b > a for a, b in zip(ramp, ramp[1:], strict=False))  # strictly rising
    assert lr_factor(cfg, 20, steps) == pytest.approx(1.0)  # the cosine starts at its peak ...
    assert lr_factor(cfg, 110, steps) == pytest.approx(0.5)  # ... half-way through the remaining 18 epochs
    assert lr_factor(cfg, 199, steps) < 0.01


def test_warmup_is_capped_at_a_quarter_of_a_short_run() -> None:
    short = _cifar_stage(epochs=1, warmup_epochs=2, schedule="cosine")  # `--set teacher.epochs=1` on a warm recipe
    assert warmup_length(short) == 0.25
    factors = [lr_factor(short, step, 28) for step in range(28)]
    assert factors[6] == pytest.approx(1.0) and factors[-1] < 0.05  # warmed up in 7 steps, then decayed
    assert _cifar_stage(epochs=10, warmup_epochs=0.5).warmup_epochs == 0.5  # fractions of an epoch are allowed
