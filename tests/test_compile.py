"""`compile: true` (torch.compile, inductor) through kdedge's training: a feature method's hooks inside the
compiled student, a resumed compiled run bit for bit, plain state-dict keys, and an export of the result.
Real compilations on the CPU: tens of seconds, so slow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from cli_helpers import run_kdedge, write_recipe
from resume_world import fitnets_world, restore_state
from safetensors.torch import load_file

from kdedge.train.distributed import training_module
from kdedge.train.features import WithAdapters
from kdedge.train.state_file import state_path

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


def test_compiled_fitnets_student_matches_eager_and_resumes_bit_exact(tmp_path: Path, monkeypatch) -> None:
    """The hooks capture the compiled student's layer (its loss follows the eager run's), the saved state
    has the plain module's keys, and a run restarted from a mid-epoch state ends with the same weights."""
    world = fitnets_world(tmp_path, monkeypatch, {"hidden": [8]})

    def train(compiled: bool, resuming: bool = False) -> tuple[dict[str, torch.Tensor], list[dict]]:
        """The eager run keeps its checkpoint in memory; the compiled ones save a state after every step."""
        student, method = world.student()
        trained = training_module(WithAdapters(student, method.adapters), world.ctx.device, 1, compiled)
        checkpoint = world.checkpoint(trained, resuming) if compiled else None
        records = world.fit(trained, checkpoint, method)
        method.capture.remove()
        return {k: v.clone() for k, v in trained.state_dict().items()}, records

    eager, eager_records = train(compiled=False)
    reference, records = train(compiled=True)
    assert reference.keys() == {f"_orig_mod.{k}" for k in eager}  # the wrapper's keys; the saved ones are plain:
    assert not any("_orig_mod" in key for key in load_file(state_path(world.run, "student")))
    assert [r["train_loss"] for r in records] == pytest.approx([r["train_loss"] for r in eager_records], rel=1e-4)
    restore_state(world.run, world.saves[2])  # epoch 1 after step 3 of 4
    torch.manual_seed(12345)
    resumed, _ = train(compiled=True, resuming=True)
    assert all(torch.equal(reference[k], resumed[k]) for k in reference)


def test_a_compiled_run_trains_and_exports_like_an_eager_one(tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path / "compiled.yaml", compile=True)
    code, _, err = run_kdedge("train", recipe, "-q", "--out", tmp_path / "run")
    assert code == 0, err
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["finished"] and summary["teacher"]["test_accuracy"] > 0.3
    assert not any("_orig_mod" in key for key in load_file(tmp_path / "run" / "teacher.safetensors"))
    code, _, err = run_kdedge("export", tmp_path / "run", "--precision", "fp32", "-q")
    assert code == 0, err
    assert (tmp_path / "run" / "export" / "teacher.fp32.onnx").is_file()
