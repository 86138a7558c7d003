"""kdedge sweep: grid parsing, bad grids, resume, a real 2-point MNIST sweep sharing one teacher."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
import torch
import yaml
from cli_helpers import tiny_overrides
from safetensors.torch import load_file

from kdedge.errors import InputError
from kdedge.experiments.sweep import (
    baseline_dir,
    baseline_runs,
    check_grid,
    parse_grid,
    planned_baselines,
    point_recipe,
)
from kdedge.experiments.sweep_results import column_cell, gain, is_finished, sort_rows, write_results
from kdedge.recipe import load_recipe
from kdedge.recipe.grid import grid_points, point_name

# A tiny teacher (64 hidden units), 600 training / 200 test images, one epoch per stage.
TINY = tiny_overrides()


def test_parse_grid_types_values_and_keeps_order() -> None:
    grid = parse_grid(["distillation.alpha=0.1, 0.9", "distillation.temperature=2.5,4", "distillation.loss=none"])
    assert grid == {
        "distillation.alpha": [0.1, 0.9],
        "distillation.temperature": [2.5, 4],
        "distillation.loss": ["none"],
    }
    points = grid_points(grid)
    assert len(points) == 4 and points[1] == {
        "distillation.alpha": 0.1,
        "distillation.temperature": 4,
        "distillation.loss": "none",
    }
    assert point_name(points[0]) == "distillation.alpha=0.1,distillation.temperature=2.5,distillation.loss=none"


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (["distillation.temprature=1,2"], "did you mean 'temperature'"),
        (["distillation.alpha="], "expected KEY=V1,V2"),
        (["distillation.alpha"], "expected KEY=V1,V2"),
    ],
)
def test_bad_grid_items_are_input_errors(items: list[str], message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_grid(items)


def test_empty_grid_and_teacher_keys_are_refused() -> None:
    with pytest.raises(InputError, match="empty grid"):
        check_grid({})
    with pytest.raises(InputError, match="ONE teacher"):
        check_grid({"teacher.lr": [0.1, 0.01]})


def test_point_recipe_loads_the_shared_teacher_and_drops_the_sweep() -> None:
    base = load_recipe("hinton_mnist_sweep")
    recipe = point_recipe(base, {"distillation.alpha": 0.9, "student.epochs": 3}, "/tmp/teacher.safetensors")
    assert recipe.sweep is None and recipe.teacher.checkpoint == "/tmp/teacher.safetensors"
    assert recipe.distillation.alpha == 0.9 and recipe.student.epochs == 3
    with pytest.raises(InputError, match="distillation.alpha"):
        point_recipe(base, {"distillation.alpha": 3}, None)  # typed and bounded by the schema


def test_sort_rows_best_first_and_results_skip_unfinished(tmp_path: Path) -> None:
    rows = [{"a": 1, "test_errors": 9.0}, {"a": 2, "test_errors": float("nan")}, {"a": 3, "test_errors": 4.0}]
    assert [r["a"] for r in sort_rows(rows, "test_errors")] == [3, 1, 2]
    assert [
        r["a"] for r in sort_rows([{"a": 1, "test_accuracy": 0.9}, {"a": 2, "test_accuracy": 0.95}], "test_accuracy")
    ] == [2, 1]
    points = [{"distillation.alpha": 0.1}, {"distillation.alpha": 0.9}]
    paths = [tmp_path / "points" / point_name(p) for p in points]
    for path, finished in zip(paths, (True, False), strict=True):
        path.mkdir(parents=True)
        summary = {"student": {"test_errors": 12, "test_accuracy": 0.9}, "finished": finished or None}
        (path / "summary.json").write_text(json.dumps(summary))
    assert [is_finished(p) for p in paths] == [True, False]
    rows = write_results(tmp_path, points, paths, "test_errors", "t")
    assert rows == [
        {
            "distillation.alpha": 0.1,
            "test_errors": 12.0,
            "student_test_accuracy": 0.9,
            "train_seconds": None,
        }
    ]
    assert (tmp_path / "sweep_heatmap.png").stat().st_size > 1000


def test_baselines_are_the_student_without_kd_one_per_non_distillation_values(tmp_path: Path) -> None:
    base = load_recipe("hinton_mnist_sweep")
    grid = {"distillation.temperature": [2, 4], "distillation.alpha": [0.5, 0.9]}
    runs = baseline_runs(base, grid, "/tmp/teacher.safetensors", tmp_path)
    assert list(runs) == [tmp_path / "baseline"]  # alpha x temperature: one baseline for all points
    recipe = runs[tmp_path / "baseline"]
    assert recipe.distillation.loss == "none" and recipe.sweep is None
    assert recipe.student == base.student and recipe.teacher.checkpoint == "/tmp/teacher.safetensors"
    runs = baseline_runs(base, grid | {"student.epochs": [25, 50]}, None, tmp_path)
    assert [(p.name, r.student.epochs) for p, r in runs.items()] == [
        ("student.epochs=25", 25),
        ("student.epochs=50", 50),
    ]
    assert baseline_dir(tmp_path, {"distillation.alpha": 0.5, "student.epochs": 50}) == (
        tmp_path / "baseline" / "student.epochs=50"
    )
    off = base.model_copy(update={"sweep": base.sweep.model_copy(update={"baseline": False})})
    assert baseline_runs(off, grid, None, tmp_path) == {}
    assert baseline_runs(base, {"distillation.loss": ["none", "kl"]}, None, tmp_path) == {}  # grid holds it


def test_gain_over_the_baseline() -> None:
    """Signed as read, no double negative: errors vs no KD -20 % = 20 % fewer errors."""
    assert gain(80, 100, "test_errors") == pytest.approx(-0.2)  # 20 % fewer errors
    assert gain(120, 100, "test_errors") == pytest.approx(0.2)
    assert gain(0.98, 0.97, "test_accuracy") == pytest.approx(0.01)
    assert column_cell("errors_vs_no_kd", -0.234) == "-23.4%"


def test_cli_bad_grids_exit_2(kdedge, data_root: Path, tmp_path: Path) -> None:
    for grid, message in ((["--grid", "distillation.temprature=1,2"], "did you mean"), ([], "empty grid")):
        result = kdedge("sweep", "hinton_mnist", *grid, "--out", tmp_path / "s", "--data-root", data_root)
        assert result.returncode == 2, result.stderr
        assert message in result.stderr and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "s").exists()


@pytest.fixture(scope="module")
def finished_sweep(tmp_path_factory, data_root: Path, kdedge) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("sweep") / "s"
    result = kdedge(
        "sweep",
        "hinton_mnist",
        *TINY,
        "--grid",
        "distillation.temperature=2,8",
        "--out",
        out,
        "--data-root",
        data_root,
    )
    assert result.returncode == 0, result.stderr
    return out, result


def test_two_point_sweep_on_mnist_trains_one_teacher(finished_sweep, data_root: Path, kdedge) -> None:
    out, result = finished_sweep
    points = sorted((out / "points").iterdir())
    assert [p.name for p in points] == ["distillation.temperature=2", "distillation.temperature=8"]
    teacher = load_file(out / "teacher" / "teacher.safetensors")
    for point in points:
        summary = json.loads((point / "summary.json").read_text())
        assert summary["finished"] and summary["teacher"]["source"].endswith("teacher/teacher.safetensors")
        copy = load_file(point / "teacher.safetensors")  # loaded, never retrained
        assert all(torch.equal(copy[k], teacher[k]) for k in teacher)
        assert "epochs" not in summary["teacher"] and summary["student"]["epochs"] == 1
    with open(out / "sweep.csv") as file:
        rows = list(csv.DictReader(file))
    errors = [int(float(r["test_errors"])) for r in rows]
    assert errors == sorted(errors) and len(rows) == 2
    # the no-KD baseline: the same student without the teacher's term, trained once, compared in every row
    baseline = json.loads((out / "baseline" / "summary.json").read_text())
    assert yaml.safe_load((out / "baseline" / "recipe.yaml").read_text())["distillation"]["loss"] == "none"
    base_errors = baseline["student"]["test_errors"]
    for row, errors_kd in zip(rows, errors, strict=True):
        assert float(row["errors_vs_no_kd"]) == pytest.approx((errors_kd - base_errors) / base_errors)
        assert "student_test_errors" not in row  # the same number as test_errors: one column
    assert f"test_errors {base_errors}" in (out / "sweep.md").read_text()
    assert "temperature" in result.stdout and (out / "sweep_heatmap.png").is_file()
    # resume: every point is finished, so a rerun trains nothing and changes no weights
    before = {p: (p / "student.safetensors").stat().st_mtime_ns for p in points}
    again = kdedge(
        "sweep",
        "hinton_mnist",
        *TINY,
        "--grid",
        "distillation.temperature=2,8",
        "--out",
        out,
        "--data-root",
        data_root,
        "-q",
    )
    assert again.returncode == 0, again.stderr
    assert before == {p: (p / "student.safetensors").stat().st_mtime_ns for p in points}


def test_interrupted_sweep_reruns_only_unfinished_points(finished_sweep, data_root: Path, kdedge) -> None:
    out, _ = finished_sweep
    done, killed = sorted((out / "points").iterdir())
    summary = json.loads((killed / "summary.json").read_text())
    del summary["finished"]  # as if the process died before the point finished
    (killed / "summary.json").write_text(json.dumps(summary))
    stamp = (done / "student.safetensors").stat().st_mtime_ns
    result = kdedge(
        "sweep",
        "hinton_mnist",
        *TINY,
        "--grid",
        "distillation.temperature=2,8",
        "--out",
        out,
        "--data-root",
        data_root,
        "-q",
    )
    assert result.returncode == 0, result.stderr
    assert (done / "student.safetensors").stat().st_mtime_ns == stamp
    assert json.loads((killed / "summary.json").read_text())["finished"]


def test_report_of_a_sweep(finished_sweep, kdedge) -> None:
    out, _ = finished_sweep
    result = kdedge("report", out)
    assert result.returncode == 0, result.stderr
    text = (out / "report.md").read_text()
    assert "![heat map](sweep_heatmap.png)" in text and "teacher/teacher_curves.png" in text
    for image in re.findall(r"!\[[^]]*\]\(([^)]+)\)", text):
        assert (out / image).read_bytes()[:4] == b"\x89PNG"


def test_distill_of_a_recipe_with_a_sweep_section_runs_the_sweep(kdedge, data_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "alpha"
    grid = "sweep.grid={distillation.alpha: [0.0, 1.0]}"
    result = kdedge("distill", "hinton_mnist_sweep", *TINY, "--set", grid, "--out", out, "--data-root", data_root)
    assert result.returncode == 0, result.stderr
    names = sorted(p.name for p in (out / "points").iterdir())
    assert names == ["distillation.alpha=0.0", "distillation.alpha=1.0"]
    assert (out / "teacher" / "teacher.safetensors").is_file() and (out / "sweep.md").is_file()


def test_the_method_is_a_grid_key_like_any_other() -> None:
    """distillation.loss, its options and the feature method vary per point; an option that one point's loss
    does not take is refused with that point's name, before anything trains."""
    base = load_recipe("hinton_mnist", {"distillation.features": [{"student": "2", "teacher": "3"}]})
    grid = parse_grid(["distillation.loss=kl,dkd", "distillation.feature_loss=none,fitnets,at"])
    recipes = [point_recipe(base, point, None) for point in grid_points(grid)]
    methods = [(r.distillation.loss, r.distillation.feature_loss) for r in recipes]
    assert methods == [(loss, feature) for loss in ("kl", "dkd") for feature in (None, "fitnets", "at")]
    dkd = point_recipe(base, {"distillation.loss": "dkd", "distillation.loss_kwargs.nckd_weight": 2}, None)
    assert dkd.distillation.loss_kwargs == {"nckd_weight": 2}
    with pytest.raises(InputError, match=r"sweep point distillation.loss=kl,.*loss_kwargs.nckd_weight"):
        point_recipe(base, {"distillation.loss": "kl", "distillation.loss_kwargs.nckd_weight": 2}, None)


def test_sweep_over_logit_and_feature_methods_on_mnist(data_root: Path, tmp_path: Path, kdedge) -> None:
    out = tmp_path / "s"
    pairs = "distillation.features=[{student: '2', teacher: '3'}]"
    grid = ["--grid", "distillation.loss=kl,dkd", "--grid", "distillation.feature_loss=none,fitnets"]
    result = kdedge("sweep", "hinton_mnist", *TINY, "--set", pairs, *grid, "--out", out, "--data-root", data_root, "-q")
    assert result.returncode == 0, result.stderr
    names = sorted(p.name for p in (out / "points").iterdir())
    assert names == [
        f"distillation.loss={loss},distillation.feature_loss={feature}"
        for loss in ("dkd", "kl")
        for feature in ("fitnets", "none")
    ]
    for name in names:
        summary = json.loads((out / "points" / name / "summary.json").read_text())
        saved = yaml.safe_load((out / "points" / name / "recipe.yaml").read_text())["distillation"]
        assert summary["finished"] and saved["loss"] in name and str(saved.get("feature_loss")).lower() in name


def test_an_alpha_0_point_is_its_own_no_kd_baseline(tmp_path: Path) -> None:
    base = load_recipe("hinton_mnist_sweep")
    baselines, same = planned_baselines(base, {"distillation.alpha": [0.0, 0.5]}, None, tmp_path)
    zero = tmp_path / "points" / point_name({"distillation.alpha": 0.0})
    assert baselines == {} and same == {tmp_path / "baseline": zero}  # cross-entropy only: trained once
    baselines, same = planned_baselines(base, {"distillation.alpha": [0.5, 0.7]}, None, tmp_path)
    assert list(baselines) == [tmp_path / "baseline"] and same == {}
