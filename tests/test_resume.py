"""Kill a run, resume it, get the same weights bit for bit; run-dir locking; non-finite loss; state format."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from cli_helpers import ENV, KDEDGE, REPO, checksums, one_error_line, run_kdedge, write_recipe
from resume_world import open_run, record_state_saves, restore_state, tiny_context, tiny_mlp, tiny_split
from safetensors import safe_open
from safetensors.torch import load_file

from kdedge.errors import InputError
from kdedge.files.rundir import RunDir
from kdedge.recipe import validate_recipe
from kdedge.train.loop import fit
from kdedge.train.resume import Checkpointer
from kdedge.train.state_file import HEADER_KEY, flatten, state_path, unflatten


def _header(path: Path) -> dict:
    with safe_open(str(path), framework="pt") as handle:
        return json.loads(handle.metadata()[HEADER_KEY])


def _metrics_without_times(run: Path) -> list[dict]:
    return [
        {k: v for k, v in json.loads(line).items() if k != "epoch_seconds"}
        for line in (run / "metrics.jsonl").read_text().splitlines()
    ]


def test_optimizer_state_round_trips_without_pickle():
    model = torch.nn.Linear(4, 3)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01, betas=(0.8, 0.9))
    for _ in range(3):
        optimizer.zero_grad()
        model(torch.randn(5, 4)).square().sum().backward()
        optimizer.step()
    tensors: dict[str, torch.Tensor] = {}
    structure = json.loads(json.dumps(flatten(optimizer.state_dict(), "optimizer", tensors)))
    restored = unflatten(structure, tensors)
    original = optimizer.state_dict()
    assert restored["param_groups"] == original["param_groups"]  # betas stay a tuple, param ids ints
    for param_id, state in original["state"].items():
        for name, value in state.items():
            assert torch.equal(restored["state"][param_id][name], value)


# 4 steps per epoch, a save after every step and at every epoch end: save 1 = epoch 1 after step 2,
# 3 = after the last step but before the epoch's record, 4 = end of epoch 1, 6 = epoch 2 after step 2
@pytest.mark.parametrize(("snapshot", "position"), [(1, (0, 2)), (3, (0, 4)), (4, (1, 0)), (6, (1, 2))])
def test_resume_from_any_snapshot_is_bit_exact(tmp_path, monkeypatch, snapshot, position):
    """In-process: train once saving a state after every step; restart from the snapshot-th save and
    compare final weights with the uninterrupted run (dropout + Adam + shuffling all exercised)."""
    student = {
        "model": "mlp",
        "model_kwargs": {"hidden": [8], "dropout": 0.3},
        "epochs": 3,
        "batch_size": 32,
        "optimizer": "adam",
        "lr": 0.01,
    }
    recipe = validate_recipe(
        {"name": "t", "data": {"name": "mnist"}, "distillation": {"loss": "none"}, "student": student}
    )
    cfg, split, ctx = recipe.student, tiny_split(120, seed=1), tiny_context()
    run, saves = open_run(tmp_path), record_state_saves(monkeypatch)

    def train(resuming: bool) -> torch.nn.Module:
        torch.manual_seed(0)
        model = tiny_mlp({"hidden": [8], "dropout": 0.3})
        checkpointer = Checkpointer(run, recipe, every_minutes=1e-9, resume=resuming)  # save every step
        checkpoint = checkpointer.open("student", model, cfg, ctx.seed)
        fit(model, split, cfg, ctx, None, recipe.distillation, checkpoint)
        return model

    reference = train(resuming=False).state_dict()
    restore_state(run, saves[snapshot])
    header = _header(state_path(run, "student"))
    assert (header["epoch"], header["step"]) == position
    torch.manual_seed(12345)  # the global RNG (dropout) must come from the state file, not from here
    resumed = train(resuming=True).state_dict()
    assert all(torch.equal(reference[k], resumed[k]) for k in reference)


def test_resume_keeps_the_same_best_validation_epoch(tmp_path, monkeypatch):
    """keep: best_val: the kept weights travel in the state file; a run resumed after the best epoch ends
    with that epoch's weights, as the uninterrupted run does."""
    stage = {"model": "mlp", "model_kwargs": {"hidden": [8]}, "epochs": 5, "batch_size": 40, "lr": 0.3}
    stage |= {"optimizer": "sgd", "keep": "best_val"}
    recipe = validate_recipe(
        {"name": "t", "data": {"name": "mnist"}, "distillation": {"loss": "none"}, "student": stage}
    )
    cfg, split, val = recipe.student, tiny_split(120, seed=1), tiny_split(60, seed=1)
    ctx = tiny_context(evaluation={"val": val})
    run, saves = open_run(tmp_path), record_state_saves(monkeypatch)

    def train(resuming: bool) -> tuple[dict, int]:
        torch.manual_seed(0)
        model = tiny_mlp({"hidden": [8]})
        checkpoint = Checkpointer(run, recipe, every_minutes=0, resume=resuming).open("student", model, cfg, ctx.seed)
        fit(model, split, cfg, ctx, None, recipe.distillation, checkpoint)
        return model.state_dict(), checkpoint.kept_epoch

    reference, kept = train(resuming=False)
    assert 1 < kept < 5, kept  # neither the first nor the last epoch: the test means something
    restore_state(run, saves[kept])  # the state saved at the end of the epoch after it
    assert _header(state_path(run, "student"))["kept"]["epoch"] == kept
    resumed, kept_again = train(resuming=True)
    assert kept_again == kept and all(torch.equal(reference[k], resumed[k]) for k in reference)


def test_resume_continues_the_weight_average(tmp_path, monkeypatch):
    """ema_decay: the average travels in the state file; a run resumed mid-epoch ends with the same
    averaged weights as the uninterrupted run. A state saved without an average is refused, in one line."""
    stage = {"model": "mlp", "model_kwargs": {"hidden": [8]}, "epochs": 2, "batch_size": 32, "ema_decay": 0.7}
    recipe = validate_recipe(
        {"name": "t", "data": {"name": "mnist"}, "distillation": {"loss": "none"}, "student": stage}
    )
    split, ctx = tiny_split(120, seed=1), tiny_context()
    run, saves = open_run(tmp_path), record_state_saves(monkeypatch)

    def train(resuming: bool, the_recipe=recipe) -> dict:
        torch.manual_seed(0)
        model = tiny_mlp({"hidden": [8]})
        checkpoint = Checkpointer(run, the_recipe, every_minutes=1e-9, resume=resuming).open(
            "student", model, the_recipe.student, ctx.seed
        )
        fit(model, split, the_recipe.student, ctx, None, the_recipe.distillation, checkpoint)
        return model.state_dict()

    reference = train(resuming=False)
    restore_state(run, saves[6])  # epoch 2, after its second step
    header = _header(state_path(run, "student"))
    assert (header["epoch"], header["step"]) == (1, 2) and any(
        k.startswith("average.") for k in load_file(state_path(run, "student"))
    )
    resumed = train(resuming=True)
    assert all(torch.equal(reference[k], resumed[k]) for k in reference)
    plain = validate_recipe(recipe.to_dict() | {"student": {**recipe.to_dict()["student"], "ema_decay": None}})
    train(resuming=False, the_recipe=plain)  # a state file without an average
    with pytest.raises(InputError, match=r"saved without a weight average \(ema_decay\); delete it to restart"):
        train(resuming=True)


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_matches_uninterrupted_run(tmp_path):
    """Must-show: real CLI in a subprocess on real MNIST, SIGKILL while the student trains, --resume;
    final weights and metrics equal those of an uninterrupted run bit for bit; the finished teacher is
    not retrained; a second run into the locked directory is refused meanwhile."""
    recipe = write_recipe(tmp_path / "tiny.yaml")  # 1,000 images: teacher 1 epoch, student 3 x 20 steps
    base = [*KDEDGE, "distill", str(recipe), "-q", "--checkpoint-minutes", "0.001"]
    full, killed = tmp_path / "full", tmp_path / "killed"
    reference = subprocess.Popen([*base, "--out", str(full)], cwd=REPO, env=ENV)
    victim = subprocess.Popen([*base, "--out", str(killed)], cwd=REPO, env=ENV)
    deadline = time.monotonic() + 120
    while not (killed / ".lock").exists() and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    code, _, err = run_kdedge("distill", recipe, "-q", "--out", killed)  # while the victim holds the lock
    assert code == 2 and "being written by another kdedge process" in one_error_line(err)
    while not state_path(RunDir(killed), "student").exists() and victim.poll() is None:
        time.sleep(0.005)
    victim.send_signal(signal.SIGKILL)
    assert victim.wait() == -signal.SIGKILL, "the run finished before it could be killed"
    header = _header(state_path(RunDir(killed), "student"))
    assert header["epoch"] < 3, header
    teacher_before = (killed / "teacher.safetensors").stat().st_mtime_ns
    assert not (killed / "student.safetensors").exists()

    resumed = subprocess.run(
        [*base, "--resume", str(killed)], cwd=REPO, capture_output=True, text=True, timeout=300, env=ENV
    )
    assert resumed.returncode == 0, resumed.stderr
    assert reference.wait(timeout=300) == 0
    for stage in ("teacher", "student"):
        expected, got = load_file(full / f"{stage}.safetensors"), load_file(killed / f"{stage}.safetensors")
        assert expected.keys() == got.keys(), stage
        assert all(torch.equal(expected[k], got[k]) for k in expected), stage
    assert _metrics_without_times(full) == _metrics_without_times(killed)
    full_summary, killed_summary = (json.loads((d / "summary.json").read_text()) for d in (full, killed))
    assert killed_summary["student"]["test_errors"] == full_summary["student"]["test_errors"]
    assert killed_summary["finished"] is True
    assert (killed / "teacher.safetensors").stat().st_mtime_ns == teacher_before  # not retrained
    assert not list(killed.glob("*.state.safetensors")) and not (killed / ".lock").exists()


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("finished")
    recipe = write_recipe(folder / "tiny.yaml", student={"epochs": 1})
    code, _, err = run_kdedge("distill", recipe, "-q", "--out", folder / "run")
    assert code == 0, err
    return recipe, folder / "run"


def test_finished_run_needs_force_and_cannot_be_resumed(finished_run):
    recipe, run = finished_run
    before = checksums(run)
    code, _, err = run_kdedge("distill", recipe, "-q", "--out", run)
    assert code == 2 and "--force" in one_error_line(err) and "already holds a finished run" in err
    code, _, err = run_kdedge("distill", recipe, "-q", "--resume", run)
    assert code == 2 and "already finished; nothing to resume" in one_error_line(err)
    assert checksums(run) == before


def test_resume_refuses_another_recipe_and_fresh_run_refuses_an_interrupted_one(finished_run, tmp_path):
    recipe, finished = finished_run
    run = tmp_path / "interrupted"
    shutil.copytree(finished, run)
    summary = json.loads((run / "summary.json").read_text())
    summary.pop("finished"), summary.pop("student")
    (run / "summary.json").write_text(json.dumps(summary))
    (run / "student.safetensors").unlink()
    before = checksums(run)
    code, _, err = run_kdedge("distill", recipe, "-q", "--resume", run, "--set", "student.lr=0.5")
    assert code == 2 and "changed: student.lr" in one_error_line(err)
    code, _, err = run_kdedge("distill", recipe, "-q", "--out", run)
    assert code == 2 and f"--resume {run}" in one_error_line(err)
    assert checksums(run) == before
    code, _, err = run_kdedge("distill", recipe, "-q", "--resume", run)  # teacher loaded, student trained
    assert code == 0, err
    assert checksums(run)["teacher.safetensors"] == before["teacher.safetensors"]
    assert load_file(run / "student.safetensors").keys() == load_file(finished / "student.safetensors").keys()


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    dead = subprocess.Popen(["true"])
    dead.wait()
    (run / ".lock").write_text(str(dead.pid))
    RunDir(run).open_for_writing(force=False).release()
    assert not (run / ".lock").exists()


def test_non_finite_loss_names_epoch_step_and_last_checkpoint(tmp_path):
    recipe = write_recipe(
        tmp_path / "r.yaml",
        teacher=None,
        distillation={"loss": "none"},
        student={"optimizer": "sgd", "schedule": "constant"},
    )
    run = tmp_path / "run"
    code, _, err = run_kdedge(
        "distill", recipe, "-q", "--out", run, "--set", "student.lr=1e30", "--checkpoint-minutes", "1e-9"
    )
    line = one_error_line(err)
    assert code == 1, err
    assert "student: loss became" in line and "in epoch 1, step " in line
    assert f"last good checkpoint: {run / 'student.state.safetensors'} (student, epoch 1, after step" in line
    assert not (run / ".lock").exists() and not (run / "student.safetensors").exists()
    assert os.path.getsize(run / "student.state.safetensors") > 0
