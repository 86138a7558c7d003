"""The alpha study of an alpha sweep: both conventions, accuracies from the points' files, the loss PNG."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from kdedge.experiments.sweep_results import result_files, write_results
from kdedge.recipe.grid import grid_points, point_name
from kdedge.report import alpha_study
from kdedge.report.markdown import write_report

TINY = [
    "--set",
    "teacher.epochs=1",
    "--set",
    "student.epochs=2",
    "--set",
    "data.train_limit=600",
    "--set",
    "data.test_limit=200",
    "--set",
    "teacher.model_kwargs.hidden=[64]",
]


def is_png(path: Path) -> bool:
    return path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path) as file:
        return list(csv.DictReader(file))


def fake_point(path: Path, index: int, with_val: bool, finished: bool = True) -> dict:
    """A point folder with summary.json and two epochs of student metrics; returns its student summary."""
    path.mkdir(parents=True)
    records = []
    for epoch in (1, 2):
        record = {
            "stage": "student",
            "epoch": epoch,
            "train_loss": 2.0 / epoch + index,
            "train_accuracy": 0.5 + index / 10 + epoch / 100,
            "test_loss": 1.5 / epoch,
            "test_accuracy": 0.4 + index / 10,
        }
        records.append(record | ({"val_loss": 1.6 / epoch, "val_accuracy": 0.3 + index / 10} if with_val else {}))
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    student = {
        "test_accuracy": 0.45 + index / 10,
        "test_errors": 50 - index,
        "train_accuracy": 0.52 + index / 10,
    }
    student |= {"val_accuracy": 0.35 + index / 10} if with_val else {}
    summary = {"teacher": {"test_accuracy": 0.9}, "student": student, "finished": finished or None}
    (path / "summary.json").write_text(json.dumps(summary))
    return student


def fake_sweep(root: Path, grid: dict, with_val: bool = True, unfinished: int | None = None) -> list[dict]:
    """sweep.json + a fake point per grid point (point `unfinished` not finished); the students' summaries."""
    root.mkdir(parents=True, exist_ok=True)
    meta = {"recipe": "fake", "grid": grid, "metric": "test_accuracy", "teacher": "t"}
    (root / "sweep.json").write_text(json.dumps(meta | {"points": len(grid_points(grid))}))
    return [
        fake_point(root / "points" / point_name(point), i, with_val, finished=i != unfinished)
        for i, point in enumerate(grid_points(grid))
    ]


def test_report_of_an_alpha_sweep_has_both_conventions_from_the_metrics(tmp_path: Path) -> None:
    students = fake_sweep(tmp_path, {"distillation.alpha": [1.0, 0.0, 0.5]})
    text = write_report(tmp_path, show=False).read_text()
    assert "## Alpha study: both loss conventions" in text and "![alpha study loss curves]" in text
    assert "| kdedge alpha (teacher-term weight) | study alpha (hard-label weight) | meaning |" in text
    assert "| 1 | 0 | teacher only | 52.00 | 35.00 | 45.00 |" in text  # summary.json values, in percent
    rows = read_csv(tmp_path / alpha_study.CSV_NAME)
    assert [(r["kdedge_alpha"], r["study_alpha"], r["meaning"]) for r in rows] == [
        ("1.0", "0.0", "teacher only"),
        ("0.0", "1.0", "no teacher"),
        ("0.5", "0.5", "mixed"),
    ]
    for row, student in zip(rows, students, strict=True):
        for key in ("train_accuracy", "val_accuracy", "test_accuracy"):
            assert float(row[key]) == pytest.approx(student[key])
        assert row["epochs"] == "2" and row["run"].startswith("points/")
    assert is_png(tmp_path / alpha_study.PNG_NAME)


def test_hard_weight_grid_without_val_skips_unfinished_points(tmp_path: Path) -> None:
    fake_sweep(
        tmp_path,
        {"distillation.hard_weight": [0.2, 1.0], "distillation.temperature": [4]},
        with_val=False,
        unfinished=1,
    )
    text = write_report(tmp_path, show=False).read_text()
    rows = read_csv(tmp_path / alpha_study.CSV_NAME)
    assert len(rows) == 1 and float(rows[0]["kdedge_alpha"]) == pytest.approx(0.8)
    assert rows[0]["study_alpha"] == "0.2" and rows[0]["meaning"] == "mixed" and rows[0]["val_accuracy"] == ""
    assert "val acc %" not in text and "| temperature |" in text and "| 0.8 | 0.2 | mixed | 4 |" in text
    assert is_png(tmp_path / alpha_study.PNG_NAME)  # test loss stands in for the missing val loss


def test_sweep_results_write_the_study_only_for_alpha_grids(tmp_path: Path) -> None:
    for name, grid in (
        ("alpha", {"distillation.alpha": [0.0, 1.0]}),
        ("t", {"distillation.temperature": [2, 4]}),
    ):
        points = grid_points(grid)
        fake_sweep(tmp_path / name, grid)
        write_results(
            tmp_path / name, points, [tmp_path / name / "points" / point_name(p) for p in points], "test_accuracy", name
        )
    assert (tmp_path / "alpha" / alpha_study.MARKDOWN_NAME).is_file() and is_png(
        tmp_path / "alpha" / alpha_study.PNG_NAME
    )
    assert not (tmp_path / "t" / alpha_study.CSV_NAME).exists()


def test_end_of_sweep_line_lists_the_alpha_study_files_that_exist(tmp_path: Path) -> None:
    sweep_files = ["sweep.md", "sweep.csv", "sweep_heatmap.png"]
    for name, grid in (
        ("alpha", {"distillation.hard_weight": [0.0, 1.0]}),
        ("t", {"distillation.temperature": [2]}),
    ):
        points = grid_points(grid)
        fake_sweep(tmp_path / name, grid)
        write_results(
            tmp_path / name, points, [tmp_path / name / "points" / point_name(p) for p in points], "test_accuracy", name
        )
    study = [alpha_study.CSV_NAME, alpha_study.MARKDOWN_NAME, alpha_study.PNG_NAME]
    assert result_files(tmp_path / "alpha", ["distillation.hard_weight"]) == sweep_files + study
    assert result_files(tmp_path / "t", ["distillation.temperature"]) == sweep_files
    (tmp_path / "alpha" / alpha_study.PNG_NAME).unlink()  # no per-epoch records: no loss curves
    assert result_files(tmp_path / "alpha", ["distillation.hard_weight"]) == sweep_files + study[:2]


def test_meaning_of_both_ends() -> None:
    assert [alpha_study.meaning(a) for a in (1.0, 0.0, 0.3)] == ["teacher only", "no teacher", "mixed"]
    assert alpha_study.meaning(0.7, "none") == "no teacher"


def test_real_mnist_alpha_sweep_then_report(kdedge, data_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "s"
    swept = kdedge(
        "sweep", "hinton_mnist", *TINY, "--grid", "distillation.alpha=1,0", "--out", out, "--data-root", data_root, "-q"
    )
    assert swept.returncode == 0, swept.stderr
    assert (out / alpha_study.CSV_NAME).is_file()  # written when the sweep finished
    result = kdedge("report", out)
    assert result.returncode == 0, result.stderr
    assert "alpha study (both conventions)" in result.stdout and "teacher only" in result.stdout
    rows = read_csv(out / alpha_study.CSV_NAME)
    assert [(r["kdedge_alpha"], r["study_alpha"], r["meaning"]) for r in rows] == [
        ("1.0", "0.0", "teacher only"),
        ("0.0", "1.0", "no teacher"),
    ]
    for row in rows:
        summary = json.loads((out / row["run"] / "summary.json").read_text())["student"]
        last = [json.loads(line) for line in (out / row["run"] / "metrics.jsonl").read_text().splitlines()][-1]
        assert float(row["test_accuracy"]) == pytest.approx(summary["test_accuracy"])
        assert float(row["train_accuracy"]) == pytest.approx(last["train_accuracy"])
    assert f"![alpha study loss curves]({alpha_study.PNG_NAME})" in (out / "report.md").read_text()
    assert is_png(out / alpha_study.PNG_NAME)
