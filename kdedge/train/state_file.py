"""The training-state file, RUN/<stage>.state.safetensors: everything needed to continue a fit bit for bit.

Tensors (model, optimiser state, RNG states as uint8, the epoch's shuffled order, the kept best-validation
weights) are safetensors tensors; everything else (epoch, step, metrics so far, the optimiser's nesting and
scalars) is JSON in the same file's header. One file, written atomically (temp file + os.replace), so a
crash can never pair tensors of one save with scalars of another; nothing is pickled.

Shapes: model.*, kept.* and average.* (the weights' moving average, ema_decay) as in the state dict;
rng.torch / rng.shuffle / rng.cuda.<i>: (S,) uint8;
position.permutation: (N,) int64; position.loss_sum: () float32; position.correct: () int64.
When it is written (every epoch, every --checkpoint-minutes, on SIGTERM) is kdedge.train.checkpoint's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from torch import nn

from kdedge.errors import InputError, RuntimeFailure
from kdedge.files.atomic import save_state
from kdedge.files.rundir import RunDir, unwrapped
from kdedge.models.weights import load_state

STATE_FORMAT = 1
HEADER_KEY = "kdedge.training_state"


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
    kept: dict[str, torch.Tensor] | None = None,
    average: nn.Module | None = None,
) -> None:
    """Write everything needed to continue training into one safetensors file, atomically. `kept`: the
    weights of the best validation epoch so far (keep: best_val), stored as kept.*; `average`: the
    moving average of the weights (ema_decay), stored as average.*."""
    tensors = {f"model.{k}": v.clone() for k, v in unwrapped(model).state_dict().items()}
    tensors |= {f"kept.{k}": v for k, v in (kept or {}).items()}
    if average is not None:
        tensors |= {f"average.{k}": v.clone() for k, v in average.state_dict().items()}
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
    save_state(path, tensors, {HEADER_KEY: json.dumps(header)})


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
    path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    average: nn.Module | None = None,
) -> tuple[dict[str, Any], EpochPosition | None, dict[str, torch.Tensor]]:
    """Load a state file into model / optimiser / RNGs (and the weights' moving average, when the stage
    keeps one); returns (header, mid-epoch position or None, the kept best-validation weights or {})."""
    header, tensors = read_training_state(path)
    unwrapped(model).load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    if average is not None:
        if not any(k.startswith("average.") for k in tensors):
            raise InputError(f"{path}: saved without a weight average (ema_decay); delete it to restart")
        average.load_state_dict({k[8:]: v for k, v in tensors.items() if k.startswith("average.")})
    optimizer.load_state_dict(unflatten(header["optimizer"], tensors))
    torch.set_rng_state(tensors["rng.torch"])
    generator.set_state(tensors["rng.shuffle"])
    cuda_states = [tensors[k] for k in sorted(tensors) if k.startswith("rng.cuda.")]
    if cuda_states and len(cuda_states) == torch.cuda.device_count():  # same GPUs: same dropout masks
        torch.cuda.set_rng_state_all(cuda_states)
    kept = {k[5:]: v for k, v in tensors.items() if k.startswith("kept.")}
    if "position.permutation" not in tensors:
        return header, None, kept
    position = EpochPosition(
        header["epoch"],
        header["step"],
        tensors["position.permutation"],
        tensors["position.loss_sum"],
        tensors["position.correct"],
    )
    return header, position, kept
