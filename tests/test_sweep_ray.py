"""kdedge sweep --backend ray, on a Ray started by this module (2 CPUs, shared by its tests): the same
sweep.csv as the local backend, points retried or reported, finished points skipped, the missing extra.

Real MNIST, tiny: 600 training / 200 test digits, one epoch per stage, two points and the no-KD baseline.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest
import torch
from cli_helpers import TINY_SET, run_subprocess
from safetensors.torch import load_file

from kdedge.commands.options import SweepOptions
from kdedge.commands.sweep import backend_options
from kdedge.errors import InputError, RuntimeFailure
from kdedge.experiments.sweep import run_sweep
from kdedge.experiments.sweep_ray import RayOptions, run_points
from kdedge.recipe import load_recipe, parse_set

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # the local runs: one thread, as each Ray point
GRID = {"distillation.temperature": [2, 8]}
TIMING = ("train_seconds",)  # the only columns allowed to differ between backends


@pytest.fixture(scope="module")
def ray_module():
    """One local Ray for the module (starting one costs 10-20 s). It declares one GPU that this machine may
    not have: Ray schedules --gpus-per-point on it and sets CUDA_VISIBLE_DEVICES all the same (a point
    without a real GPU behind it trains on the CPU: device auto finds no CUDA)."""
    ray = pytest.importorskip("ray", reason="pip install 'kdedge-distill[ray]' to test the Ray backend")
    ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def sweep(out: Path, data_root: Path, options: RayOptions | None = None, **ray_kwargs) -> list[dict]:
    """hinton_mnist shrunk to seconds, swept over GRID into `out`: locally, or on Ray with `options`."""
    recipe = load_recipe("hinton_mnist", parse_set(list(TINY_SET)))
    runner = None
    if options is not None:
        runner = partial(run_points, sweep_dir=out, options=options, metric="test_errors", **ray_kwargs)
    return run_sweep(recipe, GRID, out, str(data_root), runner=runner)


def markdown(sweep_dir: Path) -> list[str]:
    """sweep.md without its timing column and with the sweep's own folder (in the baseline note) as SWEEP."""
    lines = (sweep_dir / "sweep.md").read_text().replace(str(sweep_dir), "SWEEP").splitlines()
    header = next(line for line in lines if line.startswith("| "))
    timing = [i for i, cell in enumerate(header.split("|")) if cell.strip() in TIMING]
    return ["|".join(c for i, c in enumerate(line.split("|")) if i not in timing) for line in lines]


def table(path: Path) -> list[dict]:
    """A sweep.csv's rows without its timing columns."""
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    return [{k: v for k, v in row.items() if k not in TIMING} for row in rows]


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory, data_root: Path) -> Path:
    out = tmp_path_factory.mktemp("local") / "s"
    sweep(out, data_root)
    return out


@pytest.fixture(scope="module")
def ray_sweep(tmp_path_factory, data_root: Path, ray_module) -> Path:
    out = tmp_path_factory.mktemp("ray") / "s"
    sweep(out, data_root, RayOptions())
    return out


def test_ray_backend_writes_the_local_backends_results(local_sweep: Path, ray_sweep: Path) -> None:
    assert table(ray_sweep / "sweep.csv") == table(local_sweep / "sweep.csv")
    assert len(table(ray_sweep / "sweep.csv")) == 2
    assert markdown(ray_sweep) == markdown(local_sweep)
    for name in ("points/distillation.temperature=2", "points/distillation.temperature=8", "baseline"):
        ray_weights, local_weights = (load_file(d / name / "student.safetensors") for d in (ray_sweep, local_sweep))
        assert all(torch.equal(ray_weights[k], local_weights[k]) for k in local_weights)
    assert (ray_sweep / "teacher_logits.safetensors").is_file()


@pytest.mark.slow
def test_points_sent_back_without_a_shared_filesystem(
    local_sweep: Path, tmp_path: Path, data_root: Path, ray_module
) -> None:
    out = tmp_path / "s"
    sweep(out, data_root, RayOptions(shared_fs=False))  # every worker trains in its own temp folder
    assert table(out / "sweep.csv") == table(local_sweep / "sweep.csv")
    point = out / "points" / "distillation.temperature=8"
    recipe = (point / "recipe.yaml").read_text()
    assert str(out / "teacher" / "teacher.safetensors") in recipe and "kdedge-point-" not in recipe
    assert not (point / ".lock").exists() and json.loads((point / "summary.json").read_text())["finished"]


def test_a_failing_point_is_retried_then_reported(tmp_path: Path, data_root: Path, ray_module) -> None:
    marks = tmp_path / "attempts"
    marks.mkdir()

    def flaky(config: dict, rel: str, shared, data_root: str | None) -> dict:
        """T=2 raises a plain error every time; T=8 is a bad config."""
        import uuid

        from kdedge.errors import InputError

        (marks / f"{Path(rel).name}.{uuid.uuid4().hex}").touch()  # one file per attempt
        if rel.endswith("temperature=2"):
            raise OSError("disk went away")
        if rel.endswith("temperature=8"):
            raise InputError("student.lr: nan is not allowed")
        from kdedge.experiments.sweep_ray_point import train_point

        return train_point(config, rel, shared, data_root)

    out = tmp_path / "s"
    failed = (
        r"2 of 3 runs failed: points/distillation.temperature=2 \(OSError: disk went away\), "
        r"points/distillation.temperature=8 \(InputError: student.lr: nan"
    )  # grid order, one line
    with pytest.raises(RuntimeFailure, match=failed):
        sweep(out, data_root, RayOptions(retries=2), point_fn=flaky)
    attempts = [p.name.rsplit(".", 1)[0] for p in marks.iterdir()]
    assert attempts.count("distillation.temperature=2") == 3  # first try + 2 retries
    assert attempts.count("distillation.temperature=8") == 1  # its own config: reported once
    placement = json.loads((out / "ray_points.json").read_text())
    assert placement["points/distillation.temperature=2"] == {
        "attempts": 3,
        "status": "failed",
        "error": "OSError: disk went away",
    }
    assert placement["baseline"]["status"] == "finished" and placement["baseline"]["gpus"] == []
    assert attempts.count("baseline") == 1 and json.loads((out / "baseline" / "summary.json").read_text())["finished"]
    assert (out / "sweep.csv").read_text().count("\n") == 1  # the header: no point finished


@pytest.mark.slow  # a dead worker costs Ray a new process: ~15 s
def test_a_crashed_worker_is_retried(tmp_path: Path, data_root: Path, ray_module) -> None:
    """A worker process dying (as on a lost node) is a system failure: Ray runs the point again."""
    marks = tmp_path / "attempts"
    marks.mkdir()

    def crash_once(config: dict, rel: str, shared, data_root: str | None) -> dict:
        import os

        from kdedge.experiments.sweep_ray_point import train_point

        mark = marks / Path(rel).name
        if not mark.exists():
            mark.touch()
            os._exit(1)
        logits = Path(shared.sweep_dir) / "teacher_logits.safetensors"
        before = logits.stat().st_mtime_ns
        result = train_point(config, rel, shared, data_root)
        mark.write_text(f"{before} {logits.stat().st_mtime_ns}")  # a point that recomputed would rewrite it
        return result

    out = tmp_path / "s"
    rows = sweep(out, data_root, RayOptions(retries=1), point_fn=crash_once)
    assert len(rows) == 2 and all(row["test_errors"] == row["test_errors"] for row in rows)
    # the teacher's logits: written once by the driver's task before the points, never again by a point
    stamp = str((out / "teacher_logits.safetensors").stat().st_mtime_ns)
    for name in ("distillation.temperature=2", "distillation.temperature=8"):
        assert (marks / name).read_text().split() == [stamp, stamp]


def test_a_rerun_trains_only_unfinished_points(ray_sweep: Path, data_root: Path, ray_module) -> None:
    done, killed = sorted((ray_sweep / "points").iterdir())
    summary = json.loads((killed / "summary.json").read_text())
    del summary["finished"]  # as if its worker died before the point finished
    (killed / "summary.json").write_text(json.dumps(summary))
    stamps = {p: (p / "student.safetensors").stat().st_mtime_ns for p in (done, ray_sweep / "baseline")}
    sweep(ray_sweep, data_root, RayOptions(gpus_per_point=1))  # the rerun asks for a GPU per point
    assert stamps == {p: (p / "student.safetensors").stat().st_mtime_ns for p in stamps}
    assert json.loads((killed / "summary.json").read_text())["finished"]
    placement = json.loads((ray_sweep / "ray_points.json").read_text())
    assert placement[f"points/{killed.name}"]["gpus"] in ([0], ["0"])  # the GPU Ray gave the point
    assert placement[f"points/{done.name}"]["gpus"] == []  # trained by the first run, without a GPU


def test_a_point_bigger_than_the_cluster_is_refused(tmp_path: Path, data_root: Path, ray_module) -> None:
    with pytest.raises(InputError, match=r"--gpus-per-point 2: the Ray cluster has 1 GPUs in all"):
        sweep(tmp_path / "s", data_root, RayOptions(gpus_per_point=2))
    assert not (tmp_path / "s" / "points").exists()  # said before any point trained


def test_the_attempt_tracker_starts_without_torch() -> None:
    """Ray runs the tracker actor in a process of its own, which imports the tracker's module only: that
    module must not bring torch with it (5-10 s of start-up per sweep on this machine)."""
    code = "import sys; from kdedge.experiments.sweep_ray_point import AttemptTracker; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "False", done.stderr


def test_ray_options_are_checked() -> None:
    with pytest.raises(InputError, match="--address applies to --backend ray only"):
        backend_options(SweepOptions("hinton_mnist", address="auto"))
    with pytest.raises(InputError, match="allowed are local, ray"):
        backend_options(SweepOptions("hinton_mnist", backend="dask"))
    with pytest.raises(InputError, match="--jobs sizes the local backend"):
        backend_options(SweepOptions("hinton_mnist", backend="ray", jobs=2))
    assert backend_options(SweepOptions("hinton_mnist", jobs=4)) is None


def test_missing_ray_is_one_line_with_the_install_command(tmp_path: Path, data_root: Path) -> None:
    """In a real process (PYTHONPATH puts a `ray` that fails to import first): also the smoke test of
    `kdedge sweep`."""
    fake = tmp_path / "no_ray" / "ray"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError(\"No module named 'ray'\")\n")  # as if not installed
    import os

    env = {"PYTHONPATH": os.pathsep.join([str(fake.parent), os.environ.get("PYTHONPATH", "")])}
    result = run_subprocess(
        "sweep",
        "hinton_mnist",
        "--grid",
        "distillation.alpha=0.1,0.9",
        "--backend",
        "ray",
        "--out",
        tmp_path / "s",
        "--data-root",
        data_root,
        env=env,
    )
    assert result.returncode == 2, result.stderr
    assert (
        result.stderr.strip() == "error: --backend ray needs Ray, which is not installed: "
        "pip install 'kdedge-distill[ray]'"
    )
    assert not (tmp_path / "s").exists()
