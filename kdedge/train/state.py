"""What a fit carries from one epoch to the next and across a kill: the optimiser, the shuffling generator,
epochs done, the position inside an interrupted epoch, the records so far, and where a checkpoint goes.

The file format and `--resume` are kdedge.train.resume; this module only holds the state, so that the loop
(kdedge.train.loop) and the resume code can both use it without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import nn

from kdedge.recipe import StageConfig
from kdedge.train.optim import make_optimizer


@dataclass
class EpochPosition:
    """Where training stands inside an epoch, so a run killed mid-epoch resumes at the same step.

    epoch: 0-based epoch in progress; step: next step to run; permutation: (N,) int64, this epoch's
    shuffled order of the whole training split; loss_sum: () float32; correct: () int64 (steps so far).
    """

    epoch: int
    step: int
    permutation: torch.Tensor
    loss_sum: torch.Tensor
    correct: torch.Tensor


class StateWriter(Protocol):
    """Where a TrainingState is checkpointed (kdedge.train.resume.StateFile)."""

    def save(self, state: TrainingState, model: nn.Module, epoch: int, position: EpochPosition | None) -> None:
        """Write the state now (epoch: epochs done, or the epoch in progress when `position` is given)."""

    def at_step(self, state: TrainingState, model: nn.Module, position: EpochPosition) -> None:
        """After a step: save when the interval has passed; save and stop on SIGTERM / Ctrl-C."""


@dataclass
class TrainingState:
    """A fit's state. `epoch`: epochs already done; `position`: inside which epoch a killed run stopped (None
    at an epoch boundary); `writer`: where checkpoints go (None: never saved, e.g. in tests)."""

    stage: str
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    epoch: int = 0
    position: EpochPosition | None = None
    records: list[dict] = field(default_factory=list)
    writer: StateWriter | None = None

    @classmethod
    def fresh(
        cls, stage: str, model: nn.Module, cfg: StageConfig, seed: int, writer: StateWriter | None = None
    ) -> TrainingState:
        """Epoch 0: a new optimiser for `model` and a generator seeded with the recipe's seed."""
        return cls(stage, make_optimizer(model, cfg), torch.Generator().manual_seed(seed), writer=writer)

    def steps_done(self, steps_per_epoch: int) -> int:
        return steps_per_epoch * self.epoch + (self.position.step if self.position else 0)

    def resumes_within(self, epoch: int) -> EpochPosition | None:
        """The saved position when `epoch` is the one a killed run stopped inside, else None."""
        return self.position if self.position is not None and self.position.epoch == epoch else None

    def save(self, model: nn.Module, epochs_done: int) -> None:
        """The end-of-epoch checkpoint (a no-op without a writer)."""
        if self.writer is not None:
            self.writer.save(self, model, epochs_done, None)

    def after_step(self, model: nn.Module, position: EpochPosition) -> None:
        """A mid-epoch checkpoint when the writer's interval (--checkpoint-minutes) has passed, or when a
        stop was asked for (SIGTERM / Ctrl-C: the writer saves, then raises)."""
        if self.writer is not None:
            self.writer.at_step(self, model, position)
