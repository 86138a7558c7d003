"""Multi-process training: torchrun + DDP with the gloo backend on CPU, 2 processes.

The reference is the same recipe in one process with the global batch (2 x 32 = 64). small_cnn has no batch
norm and no dropout and the input is not augmented, so both runs take mathematically the same steps: the
union of the two ranks' batches is the single process's batch and DDP averages the two gradients. The
trained weights may only differ by float summation order.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from kdedge.errors import InputError
from kdedge.files.rundir import RunDir, unwrapped
from kdedge.models.weights import load_state
from kdedge.recipe import load_recipe
from kdedge.train.distributed import World, shard, world_from_env
from kdedge.train.pipeline import run_recipe

DATA = os.environ.get("KDEDGE_DATA", "")
needs_data = pytest.mark.skipif(not (Path(DATA) / "cifar-10-batches-py").is_dir(), reason="KDEDGE_DATA has no CIFAR-10")


def tiny_recipe(folder: Path, batch_size: int) -> Path:
    stage = {
        "model": "small_cnn",
        "model_kwargs": {"width": 8},
        "epochs": 2,
        "batch_size": batch_size,
        "optimizer": "sgd",
        "lr": 0.02,
        "momentum": 0.9,
        "schedule": "cosine",
    }
    recipe = {
        "name": "ddp_tiny",
        "seed": 3,
        "device": "cpu",
        "data": {"name": "cifar10", "val_size": 64, "train_limit": 512, "test_limit": 256},
        "teacher": stage,
        "student": stage | {"model_kwargs": {"width": 4}},
        "distillation": {"loss": "kl", "alpha": 0.5, "temperature": 4},
    }
    path = folder / f"ddp_tiny_{batch_size}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


@needs_data
def test_two_gloo_processes_match_one_process(tmp_path):
    single = RunDir(tmp_path / "single").open_for_writing(force=False)
    try:
        run_recipe(load_recipe(str(tiny_recipe(tmp_path, 64))), single, DATA)
    finally:
        single.release()
    env = os.environ | {"OMP_NUM_THREADS": "1", "KDEDGE_DATA": DATA}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "kdedge",
        "distill",
        str(tiny_recipe(tmp_path, 32)),
        "--out",
        "ddp",
        "-q",
    ]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    ddp = RunDir(tmp_path / "ddp")

    one, two = single.read_metrics(), ddp.read_metrics()
    assert [(r["stage"], r["epoch"]) for r in one] == [(r["stage"], r["epoch"]) for r in two]  # one writer
    assert [sorted(r) for r in one] == [sorted(r) for r in two]  # same metrics layout
    assert sorted(p.name for p in ddp.path.iterdir()) == sorted(p.name for p in single.path.iterdir())
    for a, b in zip(one, two, strict=True):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-3)  # all-reduced over both ranks
        assert abs(a["test_accuracy"] - b["test_accuracy"]) <= 2 / 256  # at most 2 images flip
    summary_one, summary_two = single.read_summary(), ddp.read_summary()
    assert summary_two["finished"] and summary_two["data"] == summary_one["data"]
    for stage in ("teacher", "student"):
        weights_one, weights_two = load_state(single.weights(stage)), load_state(ddp.weights(stage))
        for key, value in weights_one.items():
            torch.testing.assert_close(weights_two[key], value, rtol=1e-3, atol=1e-4)
    assert json.loads((ddp.path / "summary.json").read_text())["student"]["test_count"] == 256


def test_world_from_torchrun_env():
    assert world_from_env({}) == World(0, 1, 0)
    world = world_from_env({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"})
    assert (world.rank, world.world_size, world.local_rank) == (3, 4, 1)
    assert not world.is_main and world.distributed
    for bad in ({"WORLD_SIZE": "two"}, {"WORLD_SIZE": "2", "RANK": "2"}):
        with pytest.raises(InputError):
            world_from_env(bad)


def test_shards_are_disjoint_and_equally_long():
    permutation = torch.randperm(101, generator=torch.Generator().manual_seed(0))
    shards = [shard(permutation, rank, 4) for rank in range(4)]
    assert {len(s) for s in shards} == {25}  # equal step counts on every rank, or DDP deadlocks
    assert len(set(torch.cat(shards).tolist())) == 100
    assert torch.equal(shard(permutation, 0, 1), permutation)


def test_training_module_compiles_without_changing_the_saved_keys():
    from kdedge.models.builders import build_model
    from kdedge.train.distributed import training_module

    model = build_model("small_cnn", 10, 3, 32)
    assert training_module(model, torch.device("cpu"), 1, compile_model=False) is model
    compiled = training_module(model, torch.device("cpu"), 1, compile_model=True)  # lazy: compiles nothing
    assert compiled is not model and unwrapped(compiled) is model
    assert list(unwrapped(compiled).state_dict()) == list(model.state_dict())


def test_sweep_recipe_under_torchrun_is_refused(monkeypatch):
    from typer.testing import CliRunner

    from kdedge.cli import app

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    result = CliRunner().invoke(app, ["distill", "cifar10_alexnet_smallcnn", "--out", "unused"])
    assert isinstance(result.exception, InputError) and "torchrun" in str(result.exception)


def test_each_compiled_stage_gets_its_own_graphs_past_dynamos_recompile_limit(monkeypatch):
    """Models of one class share their forward's compiled graphs; without a reset per stage, the stages of
    a sweep beyond torch._dynamo's recompile limit (8) would silently train eager."""
    from kdedge.train.distributed import training_module

    compiled_graphs = []

    def counting_backend(graph, example_inputs):
        compiled_graphs.append(graph)
        return graph.forward

    real_compile = torch.compile
    monkeypatch.setattr(torch, "compile", lambda model: real_compile(model, backend=counting_backend))
    for _ in range(6):  # 6 stages, each with a full batch and a smaller last one: 12 graphs
        trained = training_module(torch.nn.Linear(4, 2), torch.device("cpu"), 1, compile_model=True)
        for batch in (8, 3):
            trained(torch.randn(batch, 4))
    assert len(compiled_graphs) == 12
