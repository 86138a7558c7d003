"""`compile: true` (torch.compile, inductor) through kdedge's training: a feature method's hooks inside the
compiled student, a resumed compiled run bit for bit, plain state-dict keys, and an export of the result.
Real compilations on the CPU: tens of seconds, so slow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from cli_helpers import run_kdedge, write_recipe
from safetensors.torch import load_file

from kdedge.data.types import Split
from kdedge.files.rundir import RunDir
from kdedge.models.builders import build_model
from kdedge.recipe import validate_recipe
from kdedge.train.distributed import training_module
from kdedge.train.features import FeatureMethod, WithAdapters
from kdedge.train.loop import Context, fit
from kdedge.train.resume import Checkpointer
from kdedge.train.state_file import state_path

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]
# MLP layers (kdedge.models.builders.mlp): 0 Flatten, 1 Linear, 2 ReLU, ...: "2" is the first hidden layer
FITNETS = {"features": [{"student": "2", "teacher": "2"}], "feature_loss": "fitnets", "feature_weight": 10}


def test_compiled_fitnets_student_matches_eager_and_resumes_bit_exact(tmp_path: Path, monkeypatch) -> None:
    """The hooks capture the compiled student's layer (its loss follows the eager run's), the saved state
    has the plain module's keys, and a run restarted from a mid-epoch state ends with the same weights."""
    import kdedge.train.state_file as state_file

    student_cfg = {"model": "mlp", "model_kwargs": {"hidden": [8]}, "epochs": 2, "batch_size": 32}
    recipe = validate_recipe(
        {
            "name": "t",
            "data": {"name": "mnist"},
            "teacher": {"model": "mlp"},
            "student": student_cfg | {"optimizer": "adam", "lr": 0.01},
            "distillation": FITNETS,
        }
    )
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (128, 1, 8, 8), dtype=torch.uint8, generator=generator)
    split = Split(images, torch.randint(0, 4, (128,), generator=generator))
    ctx = Context(device=torch.device("cpu"), mean=(0.5,), std=(0.25,), seed=3, num_classes=4)
    torch.manual_seed(1)
    teacher = build_model("mlp", 4, 1, 8, {"hidden": [12]}).eval()
    run = RunDir(tmp_path / "run").open_for_writing(force=False)
    saves, real_save = [], state_file.save_training_state

    def counting_save(path, *args):
        real_save(path, *args)
        saves.append(path.read_bytes())

    monkeypatch.setattr(state_file, "save_training_state", counting_save)

    def train(compiled: bool, resuming: bool = False) -> tuple[dict[str, torch.Tensor], list[dict]]:
        """The eager run keeps its checkpoint in memory; the compiled ones save a state after every step."""
        torch.manual_seed(0)
        student = build_model("mlp", 4, 1, 8, {"hidden": [8]})
        method = FeatureMethod.build(recipe.distillation, recipe.student, student, teacher, split, ctx)
        trained = training_module(WithAdapters(student, method.adapters), ctx.device, 1, compiled)
        checkpoint = None
        if compiled:
            checkpointer = Checkpointer(run, recipe, every_minutes=1e-9, resume=resuming)
            checkpoint = checkpointer.open("student", trained, recipe.student, ctx.seed)
        records = fit(trained, split, recipe.student, ctx, teacher, recipe.distillation, checkpoint, method=method)
        method.capture.remove()
        return {k: v.clone() for k, v in trained.state_dict().items()}, records

    eager, eager_records = train(compiled=False)
    reference, records = train(compiled=True)
    assert reference.keys() == {f"_orig_mod.{k}" for k in eager}  # the wrapper's keys; the saved ones are plain:
    assert not any("_orig_mod" in key for key in load_file(state_path(run, "student")))
    assert [r["train_loss"] for r in records] == pytest.approx([r["train_loss"] for r in eager_records], rel=1e-4)
    state_path(run, "student").write_bytes(saves[2])  # epoch 1 after step 3 of 4
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
