"""What a fit needs to know about where and how it runs, fixed for a whole run (kdedge.train.pipeline's
make_context builds it from the recipe and the data)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import torch

from kdedge.data.types import Split


class MetricsLog(Protocol):
    """Where each epoch's record goes (metrics.jsonl, TensorBoard): kdedge.train.prepare.RunMetrics."""

    def log(self, record: dict) -> None:
        """Keep one epoch's record."""


@dataclass(frozen=True)
class Context:
    """Where and how to train, fixed for a run: device, normalisation, seed, mixed precision, DDP rank, the
    splits scored after every epoch and where the records go."""

    device: torch.device
    mean: tuple[float, ...]
    std: tuple[float, ...]
    seed: int = 0
    amp: str = "off"
    channels_last: bool = False
    rank: int = 0
    world_size: int = 1
    num_classes: int = 0
    evaluation: Mapping[str, Split] = field(default_factory=dict)  # {'test': ..., 'val': ...} per epoch
    metrics: MetricsLog | None = None  # rank 0 logs each epoch's record here
    progress: object | None = None  # rich.progress.Progress, or None for silence
    # where teacher logits persist between fits (sweep points, resumed runs), keyed; None: in memory only
    teacher_logits_file: Path | None = None
