"""The small world the bit-exact resume tests train in (tests/test_resume.py, test_features.py, test_compile.py):
random 8x8 one-channel images in 4 classes, the CPU context, a tiny MLP teacher, a run folder, and the bytes
of every training state saved, so that a test can restart from any of them and compare final weights.

Each piece is built in the order the tests always built it (the teacher's weights come from seed 1), so
every test trains exactly what it trained before these helpers existed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from kdedge.data.types import Split
from kdedge.files.rundir import RunDir
from kdedge.models.builders import build_model
from kdedge.recipe import Recipe, validate_recipe
from kdedge.train.checkpoint import Checkpoint
from kdedge.train.features import FeatureMethod
from kdedge.train.loop import Context, fit
from kdedge.train.resume import Checkpointer
from kdedge.train.state_file import state_path

# MLP layers (kdedge.models.builders.mlp): 0 Flatten, 1 Linear, 2 ReLU, ...: "2" is the first hidden layer
FITNETS = {"features": [{"student": "2", "teacher": "2"}], "feature_loss": "fitnets", "feature_weight": 10}
NUM_CLASSES, IMAGE_SIZE = 4, 8


def tiny_split(n: int, seed: int) -> Split:
    """n random uint8 images (n, 1, 8, 8) with random labels (n,) in 0..3, from a generator seeded `seed`."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 1, IMAGE_SIZE, IMAGE_SIZE), dtype=torch.uint8, generator=generator)
    return Split(images, torch.randint(0, NUM_CLASSES, (n,), generator=generator))


def tiny_context(**extra: Any) -> Context:
    """The CPU context of these tests: mean 0.5, std 0.25, seed 3, 4 classes (`extra`: e.g. evaluation)."""
    return Context(torch.device("cpu"), (0.5,), (0.25,), seed=3, num_classes=NUM_CLASSES, **extra)


def tiny_mlp(model_kwargs: dict[str, Any]) -> torch.nn.Module:
    """An MLP for 8x8 one-channel images in 4 classes (weights from the global RNG)."""
    return build_model("mlp", NUM_CLASSES, 1, IMAGE_SIZE, model_kwargs)


def record_state_saves(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The bytes of every training state file written from now on, in order (the list grows as fit saves)."""
    import kdedge.train.state_file as state_file

    saves: list[bytes] = []
    real_save = state_file.save_training_state

    def counting_save(path: Path, *args: Any) -> None:
        real_save(path, *args)
        saves.append(path.read_bytes())

    monkeypatch.setattr(state_file, "save_training_state", counting_save)
    return saves


def open_run(tmp_path: Path) -> RunDir:
    """A fresh run folder tmp_path/run, locked for writing."""
    return RunDir(tmp_path / "run").open_for_writing(force=False)


def restore_state(run: RunDir, state: bytes) -> None:
    """Put a saved state back as the student's state file, as a run killed right after saving it leaves it."""
    state_path(run, "student").write_bytes(state)


@dataclass(frozen=True)
class FitnetsWorld:
    """A FitNets distillation of a tiny MLP student from a 12-unit MLP teacher on 128 random images."""

    recipe: Recipe
    split: Split
    ctx: Context
    teacher: torch.nn.Module  # eval mode
    run: RunDir
    saves: list[bytes]  # every state saved so far (record_state_saves)

    def student(self) -> tuple[torch.nn.Module, FeatureMethod]:
        """A new student (weights from seed 0) and its FitNets method (hooks + adapters) on the teacher."""
        torch.manual_seed(0)
        student = tiny_mlp(self.recipe.student.model_kwargs)
        method = FeatureMethod.build(
            self.recipe.distillation, self.recipe.student, student, self.teacher, self.split, self.ctx
        )
        return student, method

    def checkpoint(self, model: torch.nn.Module, resuming: bool) -> Checkpoint:
        """The student's checkpoint in the run folder, saving a state after every step."""
        checkpointer = Checkpointer(self.run, self.recipe, every_minutes=1e-9, resume=resuming)
        return checkpointer.open("student", model, self.recipe.student, self.ctx.seed)

    def fit(self, model: torch.nn.Module, checkpoint: Checkpoint | None, method: FeatureMethod) -> list[dict]:
        """kdedge's training loop on this world's split, student stage, teacher and distillation settings."""
        return fit(
            model, self.split, self.recipe.student, self.ctx, self.teacher, self.recipe.distillation, checkpoint,
            method=method,
        )  # fmt: skip


def fitnets_world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model_kwargs: dict[str, Any]) -> FitnetsWorld:
    """The world of a FitNets resume test: a student MLP of `model_kwargs`, 2 epochs of 4 steps (batch 32), Adam."""
    student = {"model": "mlp", "model_kwargs": model_kwargs, "epochs": 2, "batch_size": 32}
    recipe = validate_recipe(
        {
            "name": "t",
            "data": {"name": "mnist"},
            "teacher": {"model": "mlp"},
            "student": student | {"optimizer": "adam", "lr": 0.01},
            "distillation": FITNETS,
        }
    )
    split, ctx = tiny_split(128, seed=0), tiny_context()
    torch.manual_seed(1)
    teacher = tiny_mlp({"hidden": [12]}).eval()
    run = open_run(tmp_path)
    return FitnetsWorld(recipe, split, ctx, teacher, run, record_state_saves(monkeypatch))
