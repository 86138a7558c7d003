"""THE checkpointing object of a fit: a `Checkpoint` holds everything one stage's training carries from
one epoch to the next and across a kill (optimiser, shuffling generator, epochs done, the position inside
an interrupted epoch, the records so far) and writes it to RUN/<stage>.state.safetensors
(kdedge.train.state_file).

`fit` calls it twice: `checkpoint.save(model, record)` at the end of every epoch (the visible save, as in
torchtune's knowledge_distillation_single_device recipe) and `checkpoint.after_step(model, position)`
after every step, which saves when --checkpoint-minutes have passed and, on SIGTERM / Ctrl-C, saves and
stops (kdedge.train.stop). A Checkpoint without a run (`Checkpoint.fresh`) keeps the state in memory only.
With `keep: best_val` it also keeps the weights of the epoch with the best validation score so far (saved
with the state, so a resumed run keeps the same epoch); `use_kept_weights` puts them into the model. With
`ema_decay` it carries the moving average of the weights (timm's ModelEmaV3, `average`), updated after
every step and saved with the state; the stage keeps the average instead of the last weights.
Which stages of a run are finished, and opening a stage's Checkpoint for a fresh or resumed run, is
kdedge.train.resume.Checkpointer.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
from torch import nn

from kdedge.errors import InputError
from kdedge.files.rundir import RunDir, unwrapped
from kdedge.recipe import StageConfig
from kdedge.train import state_file, stop
from kdedge.train.optim import make_optimizer
from kdedge.train.state_file import EpochPosition, state_path

STAGES = ("teacher", "student")


@dataclass
class KeptEpoch:
    """The best validation epoch so far (keep: best_val): its number (1-based), its score (val accuracy,
    -val loss: higher is better) and its weights (the state dict on the CPU)."""

    epoch: int
    score: tuple[float, float]
    weights: dict[str, torch.Tensor]


@dataclass
class Checkpoint:
    """One stage's training state and where it is saved. `epochs_done`: epochs finished; `position`:
    inside which epoch a restored run stopped (None at an epoch boundary); `run`: the run directory whose
    RUN/<stage>.state.safetensors it writes (None: never written); `writes`: False on DDP ranks other
    than 0 (the replicas are identical: one writer)."""

    stage: str
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    keep: str = "last"
    kept: KeptEpoch | None = None
    epochs_done: int = 0
    position: EpochPosition | None = None
    records: list[dict] = field(default_factory=list)
    run: RunDir | None = None
    recipe_sha: str = ""
    every_seconds: float = math.inf
    writes: bool = True
    last_save: float = field(default_factory=time.monotonic)
    last_good: str = ""
    average: nn.Module | None = None  # timm.utils.ModelEmaV3 (imported when used: timm takes seconds to load)

    @classmethod
    def fresh(cls, stage: str, model: nn.Module, cfg: StageConfig, seed: int, **where) -> Checkpoint:
        """Epoch 0: a new optimiser for `model` and a generator seeded with the recipe's seed. `where`: the
        run, recipe_sha, every_seconds and writes of a checkpoint saved to a run directory."""
        generator = torch.Generator().manual_seed(seed)
        checkpoint = cls(stage, make_optimizer(model, cfg), generator, keep=cfg.keep, **where)
        checkpoint.average = _weight_average(model, cfg.ema_decay)
        checkpoint.last_good = f"none for the {stage} yet (it failed before its first checkpoint)"
        return checkpoint

    def restore(self, model: nn.Module) -> None:
        """Continue from the stage's state file: model, optimiser, RNGs, records, position."""
        path = state_path(self.run, self.stage)
        header, self.position, kept = state_file.restore(path, model, self.optimizer, self.generator, self.averaged)
        if header.get("recipe_sha") != self.recipe_sha or header.get("stage") != self.stage:
            raise InputError(f"{path}: saved by another recipe or stage; delete it to restart {self.stage}")
        self.records, self.epochs_done = header["records"], header["epoch"]
        if "kept" in header:
            self.kept = KeptEpoch(header["kept"]["epoch"], tuple(header["kept"]["score"]), kept)
        self.last_good = _describe(self.stage, path, self.epochs_done, header["step"])

    # -- what fit calls --------------------------------------------------------------------------------
    def save(self, model: nn.Module, record: dict) -> None:
        """The end-of-epoch checkpoint: keep the epoch's record and write the state (rank 0, with a run)."""
        self.records.append(record)
        self.epochs_done, self.position = record["epoch"], None
        if self.keep == "best_val":
            self._keep_if_best(model if self.averaged is None else self.averaged, record)
        self._write(model, self.epochs_done, None)

    def after_step(self, model: nn.Module, position: EpochPosition) -> None:
        """A mid-epoch checkpoint when the interval (--checkpoint-minutes) has passed, or when a stop was
        asked for (SIGTERM / Ctrl-C: save here, at a step boundary, then raise stop.Stopped)."""
        if self.run is None:
            return
        signum = stop.pending()
        if signum or time.monotonic() - self.last_save >= self.every_seconds:
            self._write(model, position.epoch, position)
        if signum:
            raise stop.Stopped(signum, saved(self.run, self), self.run.path)

    def update_average(self, model: nn.Module, step: int) -> None:
        """After optimiser step `step` (0-based, over the whole stage): fold the weights into their moving
        average (ema_decay; nothing without one)."""
        if self.average is not None:
            self.average.update(unwrapped(model), step=step)

    def use_kept_weights(self, model: nn.Module) -> None:
        """After the last epoch: load the kept weights into `model`: the best validation epoch's (keep:
        best_val), else the moving average (ema_decay); keep: last without an average leaves it as it is."""
        if self.kept is not None:
            unwrapped(model).load_state_dict(self.kept.weights)
        elif self.averaged is not None:
            unwrapped(model).load_state_dict(self.averaged.state_dict())

    @property
    def averaged(self) -> nn.Module | None:
        """The weights' moving average as a model (ema_decay), or None without one."""
        return self.average.module if self.average is not None else None

    @property
    def kept_epoch(self) -> int:
        """The number (1-based) of the epoch whose weights the stage keeps."""
        return self.kept.epoch if self.kept is not None else self.epochs_done

    def steps_done(self, steps_per_epoch: int) -> int:
        return steps_per_epoch * self.epochs_done + (self.position.step if self.position else 0)

    def resumes_within(self, epoch: int) -> EpochPosition | None:
        """The saved position when `epoch` is the one a killed run stopped inside, else None."""
        return self.position if self.position is not None and self.position.epoch == epoch else None

    def _keep_if_best(self, model: nn.Module, record: dict) -> None:
        """Remember the weights of the epoch just recorded when its validation score is the best so far."""
        if "val_accuracy" not in record:
            raise InputError(f"{self.stage}.keep: best_val needs a validation split; set data.val_size (e.g. 5000)")
        score = (record["val_accuracy"], -record["val_loss"])
        if self.kept is None or score > self.kept.score:
            weights = {k: v.detach().to("cpu", copy=True) for k, v in unwrapped(model).state_dict().items()}
            self.kept = KeptEpoch(record["epoch"], score, weights)

    # -- writing -------------------------------------------------------------------------------------------
    def _write(self, model: nn.Module, epoch: int, position: EpochPosition | None) -> None:
        """epoch: epochs done, or the epoch in progress when `position` is given."""
        if self.run is None or not self.writes:
            return
        step = 0 if position is None else position.step
        header = {
            "stage": self.stage,
            "recipe_sha": self.recipe_sha,
            "epoch": epoch,
            "step": step,
            "records": self.records,
            "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        kept = None
        if self.kept is not None:
            header["kept"] = {"epoch": self.kept.epoch, "score": list(self.kept.score)}
            kept = self.kept.weights
        path = state_path(self.run, self.stage)
        state_file.save_training_state(
            path, header, model, self.optimizer, self.generator, position, kept, self.averaged
        )
        self.last_save = time.monotonic()
        self.last_good = _describe(self.stage, path, epoch, step)


def _weight_average(model: nn.Module, decay: float | None) -> nn.Module | None:
    """A moving average of the weights of `model` (a copy, on its device), or None without a decay. With
    warm-up (timm's: decay 1 - (1 + step)^-2/3 until it reaches `decay`), so the first steps are not
    averaged with the random initial weights for thousands of steps."""
    if decay is None:
        return None
    from timm.utils import ModelEmaV3  # here, not at the top: a run without an average never loads timm

    average = ModelEmaV3(unwrapped(model), decay=decay, use_warmup=True)
    for module in average.module.modules():  # the copy must not feed a feature method's hooks when scored
        module._forward_hooks.clear()
        module._forward_pre_hooks.clear()
    return average


def saved(run: RunDir, current: Checkpoint | None) -> str:
    """Finished stages' weights and the current stage's last training state: what a stopped run left."""
    done = [str(run.weights(s)) for s in STAGES if run.weights(s).is_file()]
    last = current.last_good if current is not None else ""
    parts = done + ([last] if last and not last.startswith("none") else [])
    return ", ".join(parts) or "nothing yet (stopped before the first checkpoint)"


def _describe(stage: str, path, epochs_done: int, step: int) -> str:
    where = f"epoch {epochs_done + 1}, after step {step}" if step else f"end of epoch {epochs_done}"
    return f"{path} ({stage}, {where})"
