"""Multi-process training with DistributedDataParallel, driven by torchrun's environment.

`torchrun --nproc_per_node N -m kdedge distill RECIPE` starts N copies of the CLI with WORLD_SIZE, RANK and
LOCAL_RANK set. Each copy joins one process group (nccl on CUDA, gloo on CPU), trains its shard of every
epoch's shuffled order (train.fit does the sharding and the all-reduce of epoch metrics) and evaluates the
full splits, so every rank computes the same metrics. Only rank 0 touches the run directory and the console;
the other ranks write into a `SilentRunDir`. Without torchrun's variables nothing here does anything.
"""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
from torch import nn

from kdedge.errors import InputError
from kdedge.files.rundir import RunDir


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (rank 0 of 1 when not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def world_from_env(env: dict[str, str] | None = None) -> World:
    """World from torchrun's WORLD_SIZE / RANK / LOCAL_RANK; bad values are one InputError line."""
    env = os.environ if env is None else env
    try:
        world_size = int(env.get("WORLD_SIZE", "1"))
        rank = int(env.get("RANK", "0"))
        local_rank = int(env.get("LOCAL_RANK", str(rank)))
    except ValueError:
        got = ", ".join(repr(env.get(key)) for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK"))
        message = f"WORLD_SIZE / RANK / LOCAL_RANK must be integers (got {got}); start with torchrun"
        raise InputError(message) from None
    if world_size < 1 or not 0 <= rank < world_size or local_rank < 0:
        raise InputError(
            f"inconsistent torchrun environment: RANK={rank}, LOCAL_RANK={local_rank}, WORLD_SIZE={world_size}"
        )
    return World(rank, world_size, local_rank)


def current_world() -> World:
    """The world of the initialised process group, else a single process."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return World(
            torch.distributed.get_rank(),
            torch.distributed.get_world_size(),
            int(os.environ.get("LOCAL_RANK", torch.distributed.get_rank())),
        )
    return World()


def process_device(device: torch.device, world: World) -> torch.device:
    """Under DDP on CUDA each process owns the GPU of its LOCAL_RANK; CPU stays CPU."""
    if device.type != "cuda" or not world.distributed:
        return device
    if world.local_rank >= torch.cuda.device_count():
        raise InputError(
            f"LOCAL_RANK {world.local_rank} but only {torch.cuda.device_count()} CUDA "
            "device(s); use --nproc_per_node <= the number of GPUs"
        )
    return torch.device("cuda", world.local_rank)


def start(device_name: str) -> World:
    """Join the process group when started by torchrun (else do nothing); return this process's World.

    The backend follows the device the recipe asks for: nccl where CUDA will be used, gloo otherwise.
    The group is torn down at interpreter exit, after the command's last collective.
    """
    world = world_from_env()
    if not world.distributed or torch.distributed.is_initialized():
        return current_world() if world.distributed else world
    use_cuda = device_name == "cuda" or (device_name == "auto" and torch.cuda.is_available())
    if use_cuda:
        torch.cuda.set_device(process_device(torch.device("cuda"), world))
    # generous timeout: rank 0 alone writes checkpoints while the other ranks wait at the next collective
    torch.distributed.init_process_group("nccl" if use_cuda else "gloo", timeout=timedelta(minutes=30))
    atexit.register(_stop)
    return world


def _stop() -> None:
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def shard(permutation: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """This rank's share (N // world_size,) of an epoch's shuffled order (N,).

    The tail that does not divide evenly is dropped (a different tail each epoch) so that every rank
    takes the same number of steps: DDP hangs when one rank does a backward the others never join.
    """
    if world_size <= 1:
        return permutation
    usable = len(permutation) - len(permutation) % world_size
    return permutation[:usable][rank::world_size]


def training_module(model: nn.Module, device: torch.device, world_size: int, compile_model: bool) -> nn.Module:
    """What `fit` trains: DDP around `model` under torchrun, then torch.compile when the recipe asks.

    Both wrappers share the module's parameters, so saving the plain module saves the trained weights.
    (PyTorch's guidance: wrap in DDP first, then compile, so DDP's bucketing sees the graph breaks.)
    Compiling forgets the graphs of earlier stages first: models of one class share their forward's
    compiled graphs, and past torch._dynamo's recompile limit (8) a sweep's later points would run eager.
    """
    if world_size > 1:
        device_ids = [device.index] if device.type == "cuda" else None
        model = nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
    if not compile_model:
        return model
    torch._dynamo.reset()  # only the module returned here is compiled: the earlier stages' graphs are done
    return torch.compile(model)


class SilentRunDir(RunDir):
    """The run directory as ranks other than 0 see it: reads the real files (a resumed run must skip the
    same finished stages on every rank), writes nothing."""

    def open_for_writing(self, force: bool) -> SilentRunDir:
        return self

    def release(self) -> None:
        pass

    def write_recipe(self, recipe: Any) -> None:
        pass

    def save_weights(self, stage: str, model: nn.Module, recipe: Any, results: dict | None = None) -> None:
        pass

    def write_summary(self, summary: dict[str, Any]) -> None:
        pass

    def append_metrics(self, record: dict[str, Any]) -> None:
        pass

    def update_summary(self, stage: str, values: dict[str, Any]) -> None:
        pass
