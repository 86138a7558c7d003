"""Resuming a run: kill it at any moment, `--resume` it, get the same weights bit for bit.

`Checkpointer` is a run's view of its stages: which are finished (loaded on resume, never retrained) and,
for the stage about to train, a kdedge.train.checkpoint.Checkpoint continued from its state file or fresh.
`open_run` locks RUN for a fresh or resumed run. The file format is kdedge.train.state_file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import nn

from kdedge.errors import InputError
from kdedge.files.atomic import atomic_write_text
from kdedge.files.rundir import RunDir
from kdedge.models.weights import load_state, weights_path
from kdedge.recipe import Recipe, StageConfig
from kdedge.train.checkpoint import STAGES, Checkpoint, saved
from kdedge.train.state_file import state_path


class Checkpointer:
    """A run's training states: a fresh or restored Checkpoint per stage, saved every epoch (and every
    `every_minutes` inside one) into RUN/<stage>.state.safetensors, removed when the stage is done."""

    def __init__(self, run: RunDir, recipe: Recipe, every_minutes: float = 30.0, resume: bool = False) -> None:
        self.run, self.recipe, self.resume = run, recipe, resume
        self.every_seconds = every_minutes * 60 if every_minutes > 0 else float("inf")
        self.current: Checkpoint | None = None  # the stage being trained

    def finished(self, stage: str) -> dict[str, dict] | None:
        """On resume, for a stage whose weights were written and whose state file is gone: its summary
        entries, kept in the weights file's header (for a run stopped by an older kdedge, which kept them
        only in summary.json: from there). None: the stage is to be trained (or continued)."""
        if not self.resume or not self.run.weights(stage).is_file() or state_path(self.run, stage).exists():
            return None
        results = self.run.stage_results(stage)
        if stage in results:
            return {name: entry for name, entry in results.items() if name != "data"}
        older = self.run.read_summary()
        return {name: older[name] for name in (stage, f"{stage}_bias_fixed") if name in older} or None

    def open(self, stage: str, model: nn.Module, cfg: StageConfig, seed: int, rank: int = 0) -> Checkpoint:
        """The stage's Checkpoint: continued from its state file when resuming, else fresh; either way saved
        to that file from now on. metrics.jsonl is rewritten to match it (epochs after the save are dropped)."""
        where = {"run": self.run, "recipe_sha": self.recipe.fingerprint(), "every_seconds": self.every_seconds}
        checkpoint = Checkpoint.fresh(stage, model, cfg, seed, **where, writes=rank == 0)
        if self.resume and state_path(self.run, stage).exists():
            checkpoint.restore(model)
        if rank == 0:
            self._rewrite_metrics(stage, checkpoint.records)
        self.current = checkpoint
        return checkpoint

    def saved(self) -> str:
        """What is on disk to continue from (for the Ctrl-C line)."""
        return saved(self.run, self.current)

    def finish(self, stage: str) -> None:
        """The stage's weights and results are written: its training state is no longer needed."""
        state_path(self.run, stage).unlink(missing_ok=True)

    def _rewrite_metrics(self, stage: str, records: list[dict]) -> None:
        """metrics.jsonl = other stages' lines + this stage's checkpointed records (drops lost epochs)."""
        kept = [r for r in self.run.read_metrics() if r.get("stage") != stage] + records
        atomic_write_text(self.run.path / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in kept))


# -- opening a run directory for a fresh or a resumed run ---------------------------------------------------
def open_run(path: Path, recipe: Recipe, force: bool, resume: bool) -> RunDir:
    """Lock RUN for writing. Fresh: refuse an interrupted or finished run unless --force, then clear the
    old run's files. Resume: RUN must be an unfinished run of the same recipe."""
    run = RunDir(path)
    if resume:
        _check_resumable(run, recipe)
        return run.open_for_writing(force=False)
    states = [state_path(run, s).name for s in STAGES if state_path(run, s).exists()]
    stages_done = [s for s in STAGES if run.weights(s).is_file()]  # a stopped run has no summary.json yet
    if not force and not run.read_summary().get("finished") and (states or stages_done):
        raise InputError(
            f"{path} holds an interrupted run ({', '.join(states) or 'a finished stage'}); "
            f"continue it with --resume {path}, or pass --force to start over"
        )
    preflight_weights(recipe)
    run.open_for_writing(force)
    for name in ("summary.json", "metrics.jsonl", *(f"{s}.safetensors" for s in STAGES), *states):
        (run.path / name).unlink(missing_ok=True)  # --force: nothing of the old run may mix with the new one
    return run


def _check_resumable(run: RunDir, recipe: Recipe) -> None:
    if not (run.path / "recipe.yaml").is_file():
        raise InputError(f"--resume {run.path}: not a kdedge run directory (no recipe.yaml)")
    if run.read_summary().get("finished"):
        raise InputError(
            f"--resume {run.path}: that run already finished; nothing to resume "
            "(use --out NEW to run again, or --force to overwrite it)"
        )
    saved = run.read_recipe()
    if recipe.data.mean is None and recipe.data.std is None:  # the run recorded what it measured: not a change
        saved = saved.model_copy(update={"data": saved.data.model_copy(update={"mean": None, "std": None})})
    if saved.fingerprint() != recipe.fingerprint():
        changed = _changed_keys(saved.to_dict(), recipe.to_dict())
        raise InputError(
            f"--resume {run.path}: the recipe differs from the one that started the run "
            f"(changed: {', '.join(changed[:5])}); resume with the same recipe and --set values"
        )


def _changed_keys(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        keys = sorted(set(old) | set(new))
        return [k for key in keys for k in _changed_keys(old.get(key), new.get(key), f"{prefix}{key}.")]
    return [] if old == new else [prefix.rstrip(".")]


def preflight_weights(recipe: Recipe) -> None:
    """Load (safely) every weights file the recipe names before the run directory is touched."""
    for stage in STAGES:
        cfg = getattr(recipe, stage)
        if cfg is not None and cfg.checkpoint:
            load_state(weights_path(cfg.checkpoint, stage))
        if cfg is not None and isinstance(cfg.pretrained, str):
            load_state(Path(cfg.pretrained).expanduser())
