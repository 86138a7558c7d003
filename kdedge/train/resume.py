"""Training-state checkpoints: kill a run at any moment, `--resume` it, get the same weights bit for bit.

One file per stage, RUN/<stage>.state.safetensors, written atomically (temp file + os.replace) at the
end of every epoch and every `--checkpoint-minutes` inside an epoch. Tensors (model, optimiser state,
RNG states as uint8, the epoch's shuffled order) are safetensors tensors; everything else (epoch, step,
metrics so far, the optimiser's nesting and scalars) is JSON in the same file's header. One file, so a
crash can never pair tensors of one save with scalars of another; nothing is pickled.

Shapes: model.* as in the state dict; rng.torch / rng.shuffle / rng.cuda.<i>: (S,) uint8;
position.permutation: (N,) int64; position.loss_sum: () float32; position.correct: () int64.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from torch import nn

from kdedge.errors import InputError, RuntimeFailure
from kdedge.files.atomic import atomic_write_text, save_state
from kdedge.files.rundir import RunDir, unwrapped
from kdedge.models.weights import load_state, weights_path
from kdedge.recipe import Recipe, StageConfig
from kdedge.train import stop
from kdedge.train.state import EpochPosition, TrainingState

STATE_FORMAT = 1
HEADER_KEY = "kdedge.training_state"
STAGES = ("teacher", "student")


def state_path(run: RunDir, stage: str) -> Path:
    return run.path / f"{stage}.state.safetensors"


# -- flattening nested state (optimiser state dicts) into tensors + JSON ---------------------------------
def flatten(value: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    """JSON-able copy of `value`; each tensor moves into `tensors` under a dotted key, leaving a reference."""
    if isinstance(value, torch.Tensor):
        tensors[prefix] = value
        return {"__tensor__": prefix}
    if isinstance(value, dict):
        # JSON keys are strings: remember int keys (optimiser param ids) so load_state_dict sees ints again
        return {"__dict__": [[key, flatten(item, f"{prefix}.{key}", tensors)] for key, item in value.items()]}
    if isinstance(value, (list, tuple)):
        items = [flatten(item, f"{prefix}.{i}", tensors) for i, item in enumerate(value)]
        return {"__tuple__": items} if isinstance(value, tuple) else items
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise RuntimeFailure(f"training state: cannot store a {type(value).__name__} at '{prefix}' (no pickle)")


def unflatten(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of `flatten`."""
    if isinstance(value, list):
        return [unflatten(item, tensors) for item in value]
    if isinstance(value, dict):
        if "__tensor__" in value:
            return tensors[value["__tensor__"]]
        if "__tuple__" in value:
            return tuple(unflatten(item, tensors) for item in value["__tuple__"])
        return {key: unflatten(item, tensors) for key, item in value["__dict__"]}
    return value


# -- saving and loading -----------------------------------------------------------------------------------
def save_training_state(
    path: Path,
    header: dict[str, Any],
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    position: EpochPosition | None,
) -> None:
    """Write everything needed to continue training into one safetensors file, atomically."""
    tensors = {f"model.{k}": v for k, v in unwrapped(model).state_dict().items()}
    optimizer_json = flatten(optimizer.state_dict(), "optimizer", tensors)
    header = header | {"format": STATE_FORMAT, "optimizer": optimizer_json}
    tensors["rng.torch"] = torch.get_rng_state()
    tensors["rng.shuffle"] = generator.get_state()
    if torch.cuda.is_available():
        for index, cuda_state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{index}"] = cuda_state
    if position is not None:
        tensors["position.permutation"] = position.permutation
        tensors["position.loss_sum"] = position.loss_sum.detach().clone()
        tensors["position.correct"] = position.correct.detach().clone()
    save_state(
        path,
        {k: v.clone() if k.startswith("model.") else v for k, v in tensors.items()},
        {HEADER_KEY: json.dumps(header)},
    )


def read_training_state(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(header, tensors) of a state file; anything that is not our safetensors format is bad input."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            header = json.loads((handle.metadata() or {})[HEADER_KEY])
    except (SafetensorError, OSError, KeyError, ValueError) as err:
        raise InputError(
            f"{path}: not a kdedge training state ({type(err).__name__}); delete it to restart that stage"
        ) from None
    if header.get("format") != STATE_FORMAT:
        raise InputError(f"{path}: state format {header.get('format')}, this kdedge reads {STATE_FORMAT}")
    return header, load_state(path)


def restore(
    path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, generator: torch.Generator
) -> tuple[dict[str, Any], EpochPosition | None]:
    """Load a state file into model / optimiser / RNGs; returns (header, mid-epoch position or None)."""
    header, tensors = read_training_state(path)
    unwrapped(model).load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    optimizer.load_state_dict(unflatten(header["optimizer"], tensors))
    torch.set_rng_state(tensors["rng.torch"])
    generator.set_state(tensors["rng.shuffle"])
    cuda_states = [tensors[k] for k in sorted(tensors) if k.startswith("rng.cuda.")]
    if cuda_states and len(cuda_states) == torch.cuda.device_count():  # same GPUs: same dropout masks
        torch.cuda.set_rng_state_all(cuda_states)
    if "position.permutation" not in tensors:
        return header, None
    return header, EpochPosition(
        header["epoch"],
        header["step"],
        tensors["position.permutation"],
        tensors["position.loss_sum"],
        tensors["position.correct"],
    )


class StateFile:
    """RUN/<stage>.state.safetensors, written by one process (rank 0): at the end of every epoch, inside one
    whenever `every_seconds` have passed since the last save, and at the step where SIGTERM / Ctrl-C
    arrived (then the fit stops). Remembers the last good save, for the message of a run that fails."""

    def __init__(self, run: RunDir, stage: str, recipe_sha: str, every_seconds: float, writer: bool) -> None:
        self.run, self.path, self.stage, self.recipe_sha = run, state_path(run, stage), stage, recipe_sha
        self.every_seconds, self.writer = every_seconds, writer
        self.last_save = time.monotonic()
        self.last_good = f"none for the {stage} yet (it failed before its first checkpoint)"

    def save(self, state: TrainingState, model: nn.Module, epoch: int, position: EpochPosition | None) -> None:
        if not self.writer:  # under DDP the replicas are identical; one writer
            return
        step = 0 if position is None else position.step
        header = {
            "stage": self.stage,
            "recipe_sha": self.recipe_sha,
            "epoch": epoch,
            "step": step,
            "records": state.records,
            "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        save_training_state(self.path, header, model, state.optimizer, state.generator, position)
        self.last_save = time.monotonic()
        self.last_good = _describe(self.path, self.stage, epoch, step)

    def at_step(self, state: TrainingState, model: nn.Module, position: EpochPosition) -> None:
        signum = stop.pending()  # SIGTERM / Ctrl-C: save here, at a step boundary, and stop
        if signum or time.monotonic() - self.last_save >= self.every_seconds:
            self.save(state, model, position.epoch, position)
        if signum:
            raise stop.Stopped(signum, saved(self.run, self), self.run.path)


class Checkpointer:
    """A run's training states: a fresh or restored TrainingState per stage, saved every epoch (and every
    `every_minutes` inside one) into RUN/<stage>.state.safetensors, removed when the stage is done."""

    def __init__(self, run: RunDir, recipe: Recipe, every_minutes: float = 30.0, resume: bool = False) -> None:
        self.run, self.recipe, self.resume = run, recipe, resume
        self.every_seconds = every_minutes * 60 if every_minutes > 0 else float("inf")
        self.current: StateFile | None = None  # the stage being trained

    def stage_finished(self, stage: str) -> bool:
        """On resume: a stage whose weights and summary were written and whose state file is gone."""
        return (
            self.resume
            and stage in self.run.read_summary()
            and self.run.weights(stage).is_file()
            and not state_path(self.run, stage).exists()
        )

    def state_for(self, stage: str, model: nn.Module, cfg: StageConfig, seed: int, rank: int = 0) -> TrainingState:
        """The stage's state: continued from its state file when resuming, else fresh; either way saved to
        that file from now on. metrics.jsonl is rewritten to match it (epochs after the save are dropped)."""
        file = StateFile(self.run, stage, self.recipe.fingerprint(), self.every_seconds, writer=rank == 0)
        self.current = file
        state = TrainingState.fresh(stage, model, cfg, seed, writer=file)
        if self.resume and file.path.exists():
            header, state.position = restore(file.path, model, state.optimizer, state.generator)
            if header.get("recipe_sha") != self.recipe.fingerprint() or header.get("stage") != stage:
                raise InputError(f"{file.path}: saved by another recipe or stage; delete it to restart {stage}")
            state.records, state.epoch = header["records"], header["epoch"]
            file.last_good = _describe(file.path, stage, state.epoch, header["step"])
        if rank == 0:
            self._rewrite_metrics(stage, state.records)
        return state

    def saved(self) -> str:
        """What is on disk to continue from (for the Ctrl-C line)."""
        return saved(self.run, self.current)

    def finish(self, stage: str) -> None:
        """The stage's weights and summary are written: its training state is no longer needed."""
        state_path(self.run, stage).unlink(missing_ok=True)

    def _rewrite_metrics(self, stage: str, records: list[dict]) -> None:
        """metrics.jsonl = other stages' lines + this stage's checkpointed records (drops lost epochs)."""
        kept = [r for r in self.run.read_metrics() if r.get("stage") != stage] + records
        atomic_write_text(self.run.path / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in kept))


def saved(run: RunDir, current: StateFile | None) -> str:
    """Finished stages' weights and the current stage's last training state: what a stopped run left."""
    done = [str(run.weights(s)) for s in STAGES if run.weights(s).is_file()]
    last = current.last_good if current is not None else ""
    parts = done + ([last] if last and not last.startswith("none") else [])
    return ", ".join(parts) or "nothing yet (stopped before the first checkpoint)"


def _describe(path: Path, stage: str, epochs_done: int, step: int) -> str:
    where = f"epoch {epochs_done + 1}, after step {step}" if step else f"end of epoch {epochs_done}"
    return f"{path} ({stage}, {where})"


# -- opening a run directory for a fresh or a resumed run ---------------------------------------------------
def open_run(path: Path, recipe: Recipe, force: bool, resume: bool) -> RunDir:
    """Lock RUN for writing. Fresh: refuse an interrupted or finished run unless --force, then clear the
    old run's files. Resume: RUN must be an unfinished run of the same recipe."""
    run = RunDir(path)
    if resume:
        _check_resumable(run, recipe)
        return run.open_for_writing(force=False)
    states = [state_path(run, s).name for s in STAGES if state_path(run, s).exists()]
    summary = run.read_summary()
    if not force and not summary.get("finished") and (states or any(s in summary for s in STAGES)):
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
