"""The pipeline (kdedge.train.pipeline): stage results returned in memory, summary.json written once at the
end, a stopped run resumed from what its weights files keep, the bias fix never applied twice, and the Ray
backend's teacher logits computed by the pipeline's own functions (same key as every point's).
Real MNIST, tiny (1,000 training / 200 test digits): seconds each."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from cli_helpers import TINY
from safetensors import safe_open
from safetensors.torch import load_file

from kdedge.data.types import DataBundle, Split
from kdedge.errors import InputError
from kdedge.files import rundir as rundir_module
from kdedge.files.rundir import RESULTS_KEY, RunDir
from kdedge.models.builders import build_model
from kdedge.recipe import Recipe, validate_recipe
from kdedge.train import pipeline
from kdedge.train.pipeline import distill_student, obtain_teacher, prepare_data, run_recipe
from kdedge.train.prepare import check_checkpoint_data
from kdedge.train.resume import Checkpointer, open_run
from kdedge.train.teacher_cache import KEY_FIELD

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _recipe(**sections) -> Recipe:
    return validate_recipe({k: (dict(v) if isinstance(v, dict) else v) for k, v in TINY.items()} | sections)


def _run(recipe: Recipe, folder: Path, data_root: Path, resume: bool = False) -> dict:
    run = RunDir(folder).open_for_writing(force=False)
    try:
        return run_recipe(recipe, run, str(data_root), checkpointer=Checkpointer(run, recipe, resume=resume))
    finally:
        run.release()


@pytest.fixture(scope="module")
def finished(tmp_path_factory, data_root: Path) -> tuple[Path, dict, list[Path]]:
    """A finished tiny run, its returned summary, and every path summary writes went to while it ran."""
    folder, written = tmp_path_factory.mktemp("pipeline") / "run", []
    real = rundir_module.atomic_write_text
    patch = pytest.MonkeyPatch()
    patch.setattr(rundir_module, "atomic_write_text", lambda path, text: written.append(path) or real(path, text))
    try:
        summary = _run(_recipe(), folder, data_root)
    finally:
        patch.undo()
    return folder, summary, written


def test_summary_json_is_written_once_at_the_end_and_returned(finished) -> None:
    folder, summary, written = finished
    assert written.count(folder / "summary.json") == 1
    assert json.loads((folder / "summary.json").read_text()) == summary
    assert list(summary) == ["data", "teacher", "student", "finished"]
    assert summary["teacher"]["teacher_at_chance"] is False and summary["student"]["test_count"] == 200


def test_weights_keep_their_stage_results_in_their_header(finished) -> None:
    folder, summary, _ = finished
    for stage in ("teacher", "student"):
        with safe_open(str(folder / f"{stage}.safetensors"), framework="pt") as handle:
            kept = json.loads(handle.metadata()[RESULTS_KEY])
        assert kept["data"] == summary["data"]
        teacher_verdict = {"teacher_at_chance", "chance_accuracy", "chance_threshold"}
        assert kept[stage] == {k: v for k, v in summary[stage].items() if k not in teacher_verdict}


def test_a_run_stopped_after_its_teacher_resumes_without_retraining_it(finished, tmp_path, data_root) -> None:
    """Stopped between the stages: no summary.json yet, the teacher's weights (with their results) and no
    student. A fresh run into it is refused; --resume loads the teacher and trains the student."""
    reference, summary, _ = finished
    stopped = tmp_path / "stopped"
    shutil.copytree(reference, stopped)
    for name in ("summary.json", "student.safetensors"):
        (stopped / name).unlink()
    teacher_file = (stopped / "teacher.safetensors").stat().st_mtime_ns
    with pytest.raises(InputError, match="holds an interrupted run"):
        open_run(stopped, _recipe(), force=False, resume=False)
    resumed = _run(_recipe(), stopped, data_root, resume=True)
    assert (stopped / "teacher.safetensors").stat().st_mtime_ns == teacher_file  # loaded, not retrained
    assert resumed["teacher"] == summary["teacher"]
    assert resumed["student"]["test_errors"] == summary["student"]["test_errors"]
    expected = load_file(reference / "student.safetensors")
    assert all(torch.equal(expected[k], v) for k, v in load_file(stopped / "student.safetensors").items())


def test_a_run_stopped_after_its_bias_fix_never_fixes_twice(tmp_path, data_root) -> None:
    recipe = _recipe(data=TINY["data"] | {"omit_classes": [3]}, distillation=TINY["distillation"] | {"bias_fix": 2.5})
    summary = _run(recipe, tmp_path / "run", data_root)
    fixed, unfixed = (
        load_file(tmp_path / "run" / "student.safetensors"),
        load_file(tmp_path / "run" / "student_unfixed.safetensors"),
    )
    (tmp_path / "run" / "summary.json").unlink()  # stopped after the fixed student was saved
    again = _run(recipe, tmp_path / "run", data_root, resume=True)
    assert again["student_bias_fixed"] == summary["student_bias_fixed"] and again["student"] == summary["student"]
    assert all(torch.equal(fixed[k], v) for k, v in load_file(tmp_path / "run" / "student.safetensors").items())
    bias = next(k for k in fixed if k.endswith("bias") and fixed[k].shape == (10,))
    assert float(fixed[bias][3] - unfixed[bias][3]) == pytest.approx(2.5)


def test_stage_functions_return_their_results_without_a_run(data_root, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # nothing may be written, here or anywhere relative
    recipe = _recipe()
    bundle = prepare_data(recipe, str(data_root))
    teacher = obtain_teacher(recipe, bundle)
    student = distill_student(recipe, bundle, teacher.model)
    assert set(teacher.entries) == {"teacher"} and set(student.entries) == {"student"}
    assert teacher.summary["epochs"] == 1 and student.summary["epochs"] == 3
    assert not teacher.model.training and 0 < student.summary["test_accuracy"] <= 1
    assert list(tmp_path.iterdir()) == []


def test_ray_teacher_logits_come_from_the_pipelines_teacher_with_every_points_key(
    finished, tmp_path, data_root, monkeypatch
) -> None:
    from kdedge.experiments.sweep_ray_point import compute_teacher_logits

    reference, _, _ = finished
    point = _recipe(teacher=TINY["teacher"] | {"checkpoint": str(reference)})
    calls = []
    real = pipeline.obtain_teacher
    monkeypatch.setattr(pipeline, "obtain_teacher", lambda *a, **k: calls.append(a) or real(*a, **k))
    assert compute_teacher_logits(point.to_dict(), str(data_root), tmp_path / "ray.safetensors")
    assert len(calls) == 1
    _run(point, tmp_path / "point", data_root)  # the point itself: its student computes the same logits
    keys = []
    for file in (tmp_path / "ray.safetensors", tmp_path / "point" / "teacher_logits.safetensors"):
        with safe_open(str(file), framework="pt") as handle:
            keys.append(handle.metadata()[KEY_FIELD])
    assert keys[0] == keys[1]
    assert torch.equal(
        *(
            load_file(f)["logits"]
            for f in (tmp_path / "ray.safetensors", tmp_path / "point" / "teacher_logits.safetensors")
        )
    )


def test_a_teacher_checkpoint_of_a_stopped_run_of_other_data_is_refused(tmp_path) -> None:
    """A stopped run has no summary.json: its weights' header says what data it trained on."""
    other = RunDir(tmp_path / "cifar_run")
    other.path.mkdir()
    model = build_model("mlp", 10, 3, 32, {"hidden": [8]})
    data = {"dataset": "cifar10", "num_classes": 10, "image_size": 32, "in_channels": 3}
    other.save_weights("teacher", model, _recipe(), {"data": data, "teacher": {}})
    recipe = _recipe(teacher=TINY["teacher"] | {"checkpoint": str(other.path)})

    digits = Split(torch.zeros(1, 1, 28, 28, dtype=torch.uint8), torch.zeros(1, dtype=torch.long))
    mnist = DataBundle("mnist", digits, digits, tuple("0123456789"), (0.1,), (0.3,))
    with pytest.raises(InputError, match=r"was trained on cifar10 \(10 classes, 32 px\)"):
        check_checkpoint_data(recipe, mnist)


def test_keep_best_val_saves_that_epoch_and_the_summary_names_it(tmp_path, data_root) -> None:
    student = TINY["student"] | {"keep": "best_val", "epochs": 4, "lr": 0.05}
    recipe = _recipe(data=TINY["data"] | {"val_size": 200}, student=student)
    summary = _run(recipe, tmp_path / "run", data_root)
    records = [r for r in RunDir(tmp_path / "run").read_metrics() if r["stage"] == "student"]
    best = max(records, key=lambda r: (r["val_accuracy"], -r["val_loss"]))
    assert summary["student"]["kept_epoch"] == best["epoch"] and summary["student"]["epochs"] == 4
    assert summary["student"]["val_accuracy"] == best["val_accuracy"]  # scored with the kept weights
    assert summary["student"]["train_accuracy"] == best["train_accuracy"]
    assert summary["teacher"]["kept_epoch"] == 1  # keep: last
    assert "keep: best_val" in (tmp_path / "run" / "recipe.yaml").read_text()


def test_keep_best_val_without_a_validation_split_is_refused_before_anything_is_written(tmp_path) -> None:
    from cli_helpers import one_error_line, run_kdedge, write_recipe

    recipe = write_recipe(tmp_path / "r.yaml")
    code, _, err = run_kdedge("distill", recipe, "-q", "--out", tmp_path / "run", "--set", "teacher.keep=best_val")
    line = one_error_line(err)
    assert code == 2 and line.startswith("error: teacher.keep: best_val keeps the epoch with the best validation")
    assert "set data.val_size (e.g. 100)" in line and not (tmp_path / "run").exists()
