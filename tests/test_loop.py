"""The loop's shape (kdedge.train.loop): one checkpointing object saved once per epoch with that epoch's
record, evaluation apart from training, and a distillation method that gets each step's logits and targets.
Tiny synthetic data on the CPU: seconds."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torch import nn

from kdedge.data.types import Split
from kdedge.errors import InputError
from kdedge.losses import TrainingProgress
from kdedge.models.builders import build_model
from kdedge.recipe import DistillConfig, StageConfig
from kdedge.train.checkpoint import Checkpoint
from kdedge.train.context import Context
from kdedge.train.evaluation import score_splits
from kdedge.train.loop import EpochTotals, fit
from kdedge.train.methods import LogitLoss

pytestmark = pytest.mark.usefixtures("one_torch_thread")
CFG = StageConfig(model="mlp", model_kwargs={"hidden": [8]}, epochs=3, batch_size=32, lr=0.05)


def _split(n: int = 96, seed: int = 1) -> Split:
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 1, 8, 8), dtype=torch.uint8, generator=generator)
    return Split(images, torch.randint(0, 4, (n,), generator=generator))


def _context(**evaluation: Split) -> Context:
    return Context(torch.device("cpu"), (0.5,), (0.25,), seed=3, num_classes=4, evaluation=evaluation)


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build_model("mlp", 4, 1, 8, {"hidden": [8]})


def test_fit_saves_its_one_checkpoint_once_per_epoch_with_that_epochs_record() -> None:
    model, saves = _model(), []

    class Spy(Checkpoint):
        def save(self, model: nn.Module, record: dict) -> None:
            saves.append(dict(record))
            super().save(model, record)

    checkpoint = Spy.fresh("teacher", model, CFG, seed=3)
    records = fit(model, _split(), CFG, _context(test=_split(40, seed=2)), checkpoint=checkpoint)
    assert [s["epoch"] for s in saves] == [1, 2, 3] and saves == records == checkpoint.records
    assert checkpoint.epochs_done == 3 and checkpoint.position is None
    assert {"train_loss", "train_accuracy", "lr", "test_loss", "test_accuracy", "test_errors"} <= set(records[0])


def test_scoring_the_splits_neither_trains_nor_draws_random_numbers() -> None:
    model, test, val = _model(), _split(40, seed=2), _split(24, seed=4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    teacher_logits = torch.randn(40, 4)
    rng = torch.get_rng_state()
    scores = score_splits(model, _context(test=test, val=val), 16, teacher_logits)
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert set(scores) == {f"{s}_{m}" for s in ("test", "val") for m in ("loss", "accuracy", "errors")} | {
        "test_agreement"
    }
    with torch.inference_mode():
        predicted = model((test.images.float() / 255 - 0.5) / 0.25).argmax(1)
    assert scores["test_errors"] == int((predicted != test.labels).sum())
    assert scores["test_agreement"] == pytest.approx(float((predicted == teacher_logits.argmax(1)).float().mean()))


def test_epoch_totals_on_one_process_are_the_sums_themselves() -> None:
    totals = EpochTotals(torch.tensor(6.0), torch.tensor(3), 12)
    assert _context().world_size == 1 and totals.all_reduced(_context()) is totals


def test_a_distillation_method_gets_each_steps_logits_and_targets() -> None:
    """The plug point for other methods: called once per step with student logits (B, C), teacher logits
    (B, C) and targets (B,); whatever it returns is the loss that trains the student."""
    split, calls = _split(), []
    teacher = _model(seed=5).eval()
    distill = DistillConfig(loss="kl", alpha=0.5, temperature=2.0)
    recipe_loss = LogitLoss.from_recipe(distill, CFG, split.labels, 4)

    def method(student_logits, teacher_logits, targets, progress=None, student_features=None, teacher_features=None):
        calls.append((student_logits.shape, teacher_logits.shape, targets.shape, progress, student_features))
        return recipe_loss(student_logits, teacher_logits, targets, progress)

    plugged, default = _model(), _model()
    fit(plugged, split, CFG, _context(), teacher, distill, method=method)
    fit(default, split, CFG, _context(), teacher, distill)
    assert len(calls) == 3 * 3  # 3 epochs x 3 steps of 32
    assert calls[0] == (torch.Size([32, 4]), torch.Size([32, 4]), torch.Size([32]), TrainingProgress(0, 3, 0, 3), None)
    assert calls[-1][3] == TrainingProgress(2, 3, 2, 3)
    expected = default.state_dict()
    assert all(torch.equal(expected[k], v) for k, v in plugged.state_dict().items())


# -- keep: best_val and the progress line --------------------------------------------------------------------
NOISY = CFG.model_copy(update={"epochs": 6, "lr": 0.3, "optimizer": "sgd", "schedule": "constant"})


class Progress:
    """Stands in for rich's Progress: records each task's descriptions."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add_task(self, description: str, total: int) -> int:
        return 0

    def advance(self, task: int) -> None:
        pass

    def update(self, task: int, description: str) -> None:
        self.lines.append(description)


def test_keep_best_val_ends_with_the_best_validation_epochs_weights() -> None:
    """Random labels and a large lr: validation accuracy wanders, so the best epoch is not the last. The
    kept weights equal those of a run stopped after that epoch (constant lr: the first epochs coincide)."""
    train, ctx = _split(), _context(test=_split(40, seed=2), val=_split(48, seed=4))
    kept_model = _model()
    checkpoint = Checkpoint.fresh("teacher", kept_model, NOISY.model_copy(update={"keep": "best_val"}), seed=3)
    records = fit(kept_model, train, NOISY, ctx, checkpoint=checkpoint)
    scores = [(r["val_accuracy"], -r["val_loss"]) for r in records]
    best = scores.index(max(scores)) + 1
    assert checkpoint.kept_epoch == best and best < NOISY.epochs, scores
    stopped = _model()
    fit(stopped, train, NOISY.model_copy(update={"epochs": best}), ctx)
    expected = stopped.state_dict()
    assert all(torch.equal(expected[k], v) for k, v in kept_model.state_dict().items())


def test_keep_best_val_without_a_validation_split_is_said() -> None:
    model = _model()
    checkpoint = Checkpoint.fresh("student", model, CFG.model_copy(update={"keep": "best_val"}), seed=3)
    with pytest.raises(InputError, match=r"student.keep: best_val needs a validation split; set data.val_size"):
        fit(model, _split(), CFG, _context(test=_split(40, seed=2)), checkpoint=checkpoint)


@pytest.mark.parametrize(("splits", "shown"), [(("test", "val"), "val acc"), (("test",), "test acc")])
def test_the_progress_line_shows_val_accuracy_where_there_is_a_val_split(splits, shown) -> None:
    progress = Progress()
    evaluation = {name: _split(40, seed=i + 2) for i, name in enumerate(splits)}
    ctx = _context(**evaluation)
    fit(_model(), _split(), CFG, replace(ctx, progress=progress))
    assert len(progress.lines) == CFG.epochs and all(shown in line for line in progress.lines)
    assert not any(("test acc" if shown == "val acc" else "val acc") in line for line in progress.lines)


def test_a_student_trained_alone_keeps_its_stage_name() -> None:
    """distillation.loss: none (the no-KD baseline) fits the student without a teacher: its records and
    its progress line still say student."""
    model, progress = _model(), Progress()
    checkpoint = Checkpoint.fresh("student", model, CFG, seed=3)
    records = fit(
        model, _split(), CFG, replace(_context(test=_split(40, seed=2)), progress=progress), None, None, checkpoint
    )
    assert {r["stage"] for r in records} == {"student"} and progress.lines[-1].startswith("student epoch 3/3")


def test_a_compiled_model_trains_compiled_and_is_scored_by_its_plain_module() -> None:
    """torch.compile wraps the model in a module holding it as `_orig_mod`; scoring through the wrapper
    would compile again for eval mode and each evaluation batch size (minutes on a CPU)."""
    plain, modes = _model(), []

    class Compiled(nn.Module):  # what training_module returns with compile: true, without compiling
        def __init__(self, module: nn.Module) -> None:
            super().__init__()
            self._orig_mod = module

        def forward(self, inputs: torch.Tensor) -> torch.Tensor:
            modes.append(self.training)
            return self._orig_mod(inputs)

    records = fit(Compiled(plain), _split(), CFG, _context(test=_split(40, seed=2)))
    assert modes == [True] * 9  # 3 epochs x 3 training steps through the wrapper, no scoring pass
    assert len(records) == 3 and "test_accuracy" in records[-1]


# -- ema_decay: the stage keeps a moving average of its weights -----------------------------------------------
def test_ema_decay_keeps_the_step_by_step_average_and_logs_the_raw_weights_beside_it() -> None:
    """The average follows every optimiser step (timm's decay for that step); the stage ends with it and
    scores it as test_*, while raw_test_* are the scores the same run without an average logs."""
    averaged_cfg, raw_weights = CFG.model_copy(update={"ema_decay": 0.6}), []

    class Spy(Checkpoint):
        def update_average(self, model: nn.Module, step: int) -> None:
            raw_weights.append((step, {k: v.clone() for k, v in model.state_dict().items()}))
            super().update_average(model, step)

    ctx, model = _context(test=_split(40, seed=2)), _model()
    checkpoint = Spy.fresh("teacher", model, averaged_cfg, seed=3)
    records = fit(model, _split(), averaged_cfg, ctx, checkpoint=checkpoint)
    plain_records = fit(_model(), _split(), CFG, ctx)
    assert [step for step, _ in raw_weights] == list(range(9))  # 3 epochs x 3 steps
    expected = dict(raw_weights[0][1])
    for step, weights in raw_weights[1:]:
        decay = checkpoint.average.get_decay(step)
        expected = {k: decay * expected[k] + (1 - decay) * weights[k] for k in weights}
    final = model.state_dict()
    assert all(torch.allclose(expected[k], final[k], atol=1e-6) for k in final)
    assert not all(torch.equal(raw_weights[-1][1][k], final[k]) for k in final)  # an average, not the last step
    assert [r["raw_test_errors"] for r in records] == [r["test_errors"] for r in plain_records]
    assert records[-1]["test_errors"] == score_splits(model, ctx, 1024)["test_errors"]
