"""Learning-rate schedules: cosine with warm restarts (cosine_cycles) and its validation."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from kdedge.recipe import StageConfig
from kdedge.train.optim import lr_factor


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
