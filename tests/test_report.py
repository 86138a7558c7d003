"""kdedge report: a Markdown page with tables and PNGs for a run (and, in test_sweep, a sweep)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from cli_helpers import tiny_overrides

from kdedge.report import plots

TINY = tiny_overrides("teacher.epochs=2")


def is_png(path: Path) -> bool:
    return path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000


def test_report_of_a_run_with_bias_fix(kdedge, data_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    trained = kdedge(
        "distill",
        "hinton_mnist",
        *TINY,
        "--set",
        "data.omit_classes=[3]",
        "--set",
        "distillation.bias_fix=2.0",
        "--out",
        out,
        "--data-root",
        data_root,
        "-q",
    )
    assert trained.returncode == 0, trained.stderr
    result = kdedge("report", out)
    assert result.returncode == 0, result.stderr
    text = (out / "report.md").read_text()
    for stage in ("teacher", "student", "student_bias_fixed"):
        assert f"| {stage} | mlp |" in text
    assert "(classes [3])" in text and "| 2.0 |" in text  # omitted-class errors and the shift
    images = re.findall(r"!\[[^]]*\]\(([^)]+)\)", text)
    assert {"teacher_curves.png", "student_curves.png", "student_bias_fixed_confusion.png"} <= set(images)
    assert all(is_png(out / image) for image in images)


def test_report_of_something_else_exits_2(kdedge, tmp_path: Path) -> None:
    result = kdedge("report", tmp_path)
    assert result.returncode == 2 and "neither a run directory" in result.stderr


def test_plot_helpers_write_pngs(tmp_path: Path) -> None:
    records = [
        {
            "epoch": e,
            "train_loss": 1 / e,
            "test_loss": 1.2 / e,
            "train_accuracy": 0.5 + e / 10,
            "test_accuracy": 0.45 + e / 10,
        }
        for e in (1, 2, 3)
    ]
    assert is_png(plots.learning_curves(records, tmp_path / "c.png", "t"))
    averaged = [r | {"raw_test_accuracy": r["test_accuracy"] - 0.02} for r in records]  # ema_decay's records
    assert is_png(plots.learning_curves(averaged, tmp_path / "a.png", "t"))
    assert is_png(plots.curves({"a": ([1, 2], [3, 2]), "b": ([1, 2], [4, 1])}, tmp_path / "l.png", "t"))
    assert is_png(plots.heatmap(np.array([[1.0, np.nan]]), ["r"], ["x", "y"], tmp_path / "h.png", "t", "r", "c"))


def test_summary_table_leaves_out_columns_empty_in_every_row() -> None:
    """Own data (no omitted classes, no bias fix): no empty `omitted-class errors` / `bias shift` columns."""
    from kdedge.report.markdown import summary_rows

    stage = {"model": "resnet18", "params": 11_000_000, "test_accuracy": 0.5, "test_errors": 5, "test_count": 10}
    lines = summary_rows({"teacher": stage | {"train_seconds": 12.5}, "student": stage | {"model": "mobilenetv2_100"}})
    assert lines[0] == "| stage | model | params | test acc % | test errors | train s |"
    assert lines[1] == "|---|---|---|---|---|---|"
    assert lines[3] == "| student | mobilenetv2_100 | 11,000,000 | 50.00 | 5 / 10 |  |"  # one row has train s
    biasfix = stage | {"omitted_class_errors": 3, "omitted_class_count": 9, "omitted_classes": [3], "bias_shift": 2.0}
    assert "| omitted-class errors | bias shift |" in summary_rows({"student": biasfix})[0]
