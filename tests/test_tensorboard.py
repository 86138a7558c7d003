"""TensorBoard events: written next to metrics.jsonl when asked (--tensorboard or `tensorboard: true`),
never otherwise; asking without the package installed is one line and exit 2."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from cli_helpers import TINY_ARGS

from kdedge.files.rundir import RunDir
from kdedge.report.tensorboard import SCALARS, TensorBoardLogger
from kdedge.train.pipeline import RunMetrics

needs_tensorboard = pytest.mark.skipif(
    importlib.util.find_spec("tensorboard") is None,
    reason="tensorboard is an optional extra: pip install 'kdedge-distill[tensorboard]'",
)


def _scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


@needs_tensorboard
def test_logger_writes_each_metric_per_stage_and_epoch(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    metrics = RunMetrics(run, tensorboard=True)
    for epoch, loss in ((1, 0.9), (2, 0.5)):
        metrics.log(
            {
                "stage": "student",
                "epoch": epoch,
                "train_loss": loss,
                "train_accuracy": 0.5,
                "lr": 0.1,
                "test_loss": 1.0,
                "test_accuracy": 0.6,
                "test_errors": 4,
                "test_agreement": 0.75,
            }
        )
    assert len(run.read_metrics()) == 2  # metrics.jsonl still gets every record
    scalars = _scalars(tmp_path)
    assert scalars["student/loss/train"] == [(1, pytest.approx(0.9)), (2, pytest.approx(0.5))]
    assert scalars["student/agreement/teacher_student_test"][0][1] == pytest.approx(0.75)
    assert {f"student/{tag}" for tag in SCALARS.values() if "val" not in tag} == set(scalars)


def test_without_tensorboard_only_metrics_jsonl_is_written(tmp_path: Path) -> None:
    RunMetrics(RunDir(tmp_path), tensorboard=False).log({"stage": "teacher", "epoch": 1, "train_loss": 1.0})
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.jsonl"]


@needs_tensorboard
def test_logger_is_importable_without_side_effects(tmp_path: Path) -> None:
    TensorBoardLogger(tmp_path).close()
    assert any(p.name.startswith("events.out.tfevents") for p in tmp_path.iterdir())


@needs_tensorboard
def test_cli_writes_events_only_when_asked(kdedge, finished_run, data_root: Path, tmp_path: Path) -> None:
    plain_run, _ = finished_run
    assert not list(plain_run.glob("events.out.tfevents*")), "events written although nobody asked"
    out = tmp_path / "tb"
    args = ["--out", out, "--data-root", data_root, "--tensorboard", "-q"]
    result = kdedge("distill", "hinton_mnist", *TINY_ARGS, *args)
    assert result.returncode == 0, result.stderr
    assert len(list(out.glob("events.out.tfevents*"))) == 1 and (out / "metrics.jsonl").is_file()
    scalars = _scalars(out)
    for tag in ("loss/train", "loss/test", "accuracy/train", "accuracy/test", "lr"):
        assert f"teacher/{tag}" in scalars and f"student/{tag}" in scalars
    assert "student/agreement/teacher_student_test" in scalars
    assert "tensorboard: true" in (out / "recipe.yaml").read_text()


def test_tensorboard_missing_is_one_line_exit_2(tmp_path: Path, kdedge, monkeypatch) -> None:
    """`tensorboard` as if not installed (None in sys.modules: how Python sees a package that is not there),
    with torch's TensorBoard writer imported afresh, so that its own `import tensorboard` fails."""
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    monkeypatch.delitem(sys.modules, "torch.utils.tensorboard", raising=False)
    out = tmp_path / "never"
    result = kdedge("distill", "quickstart_mnist", "--tensorboard", "--out", out)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: tensorboard: the 'tensorboard' package is not installed; "
        "pip install 'kdedge-distill[tensorboard]' "
        "(or pip install tensorboard), or drop --tensorboard"
    ]
    assert not out.exists()
