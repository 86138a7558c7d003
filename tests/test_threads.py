"""Each process of kdedge's own parallel paths gets its share of the cores (kdedge.runtime.threads): sweep
workers, Ray points, `distill --threads`, and the hint on a busy machine. No timing asserts."""

from __future__ import annotations

import os

import pytest
from cli_helpers import run_kdedge
from threads_probe import threads_seen

from kdedge.commands.distill import _use_threads
from kdedge.commands.options import DistillOptions
from kdedge.experiments import sweep, sweep_ray_point
from kdedge.runtime import threads


@pytest.fixture
def saved_threads(monkeypatch):
    """Put torch's thread count and the thread variables back after a test that changes them."""
    import torch

    count = torch.get_num_threads()
    for name in threads.THREAD_VARIABLES:
        monkeypatch.setenv(name, os.environ.get(name, "1"))
    yield
    torch.set_num_threads(count)


@pytest.mark.parametrize(("jobs", "cores", "expected"), [(1, 2, 2), (2, 2, 1), (3, 2, 1), (2, 16, 8), (3, 16, 5)])
def test_each_job_gets_its_share_of_the_cores(jobs: int, cores: int, expected: int) -> None:
    assert threads.share(jobs, cores) == expected


def test_usable_cores_follow_the_affinity() -> None:
    assert threads.usable_cores() == len(os.sched_getaffinity(0))


@pytest.mark.parametrize(("cpus", "expected"), [(0.5, 1), (1, 1), (2, 2), (3.5, 3)])
def test_a_ray_point_runs_its_cpus_per_point_threads(cpus: float, expected: int) -> None:
    assert threads.point_threads(cpus) == expected


def test_sweep_workers_start_with_their_share(monkeypatch) -> None:
    """A real spawned worker of the local backend's pool, started from a process that says 2 threads: its
    environment and torch say 1 (torch caps its count at the physical cores, so 1 is what proves it)."""
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    with sweep.worker_pool(1, 1) as pool:
        assert pool.submit(threads_seen).result(timeout=120) == ("1", 1)


def test_the_local_backend_gives_each_job_cores_over_jobs(monkeypatch) -> None:
    seen = {}

    class Pool:
        def __init__(self, jobs: int, count: int) -> None:
            seen["pool"] = (jobs, count)

        def __enter__(self):
            return self

        def __exit__(self, *exc) -> None:
            pass

        def submit(self, fn, config, path, data_root, count):
            seen.setdefault("points", []).append(count)
            return type("Done", (), {"result": lambda self: None})()

    monkeypatch.setattr(sweep, "worker_pool", Pool)
    monkeypatch.setattr(sweep, "share", lambda jobs: threads.share(jobs, 8))
    sweep._run_parallel([({}, "a"), ({}, "b")], None, 4, None, None)
    assert seen == {"pool": (4, 2), "points": [2, 2]}


def test_a_ray_point_trains_with_the_drivers_thread_count(monkeypatch, tmp_path) -> None:
    seen = {}
    monkeypatch.setattr(sweep, "_run_point", lambda config, path, root, count: seen.setdefault("threads", count))
    shared = sweep_ray_point.Shared(str(tmp_path), "token", shared_fs=True, threads=threads.point_threads(2))
    sweep_ray_point.train_point({}, "points/a", shared, None)
    assert seen == {"threads": 2}


def test_distill_threads_sets_torch_and_the_children(saved_threads) -> None:
    import torch

    _use_threads(DistillOptions("hinton_mnist", threads=1))
    assert torch.get_num_threads() == 1
    assert all(os.environ[name] == "1" for name in threads.THREAD_VARIABLES)


def test_threads_below_one_are_a_usage_error() -> None:
    code, _, err = run_kdedge("distill", "hinton_mnist", "--threads", "0")
    assert code == 2 and "--threads" in err


def test_a_busy_machine_gets_one_hint_and_a_quiet_one_none(monkeypatch, capsys) -> None:
    assert threads.busy_hint(None, load=0.9, cores=2) is None
    assert threads.busy_hint(1, load=5.0, cores=2) is None  # the user chose already
    hint = threads.busy_hint(None, load=1.0, cores=2)
    assert hint is not None and "--threads 1" in hint and "another job is using the CPU" in hint
    monkeypatch.setattr(os, "getloadavg", lambda: (3.0, 3.0, 3.0))
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    _use_threads(DistillOptions("hinton_mnist"))
    assert "another job is using the CPU (load average 3.0 on 2 cores)" in capsys.readouterr().out
