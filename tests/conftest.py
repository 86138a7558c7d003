"""Shared fixtures: the real data folder (KDEDGE_DATA), the CLI in this process, a tiny finished run.

Tests never hard-code a data path: `make test` and .ci/run export KDEDGE_DATA; without it, tests that
need real data are skipped with a message saying so.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_helpers import TINY_ARGS, CliResult, run_kdedge, run_subprocess

REPO = Path(__file__).resolve().parents[1]

if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs a pytest worker per core: a second torch thread in each would only spin against the
    # other worker (see one_torch_thread). Set before any test module imports torch, which reads it once.
    os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models on a shared 2-core box: a second intra-op thread only spin-waits and burns CPU (a
    1,000-image fit: 25 s on 2 threads vs 0.9 s on one). Modules opt in with
    pytestmark = pytest.mark.usefixtures("one_torch_thread")."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The shared real-data folder from $KDEDGE_DATA; tests that need it skip, clearly, without it."""
    value = os.environ.get("KDEDGE_DATA")
    if not value:
        pytest.skip(
            "KDEDGE_DATA is not set: export KDEDGE_DATA=<folder with MNIST/, cifar-10-batches-py/> "
            "(make test does this)"
        )
    root = Path(value).expanduser()
    if not root.is_dir():
        pytest.skip(f"KDEDGE_DATA={value} is not a folder")
    return root


@pytest.fixture(scope="session")
def kdedge() -> Callable[..., CliResult]:
    """The CLI in this process as a fixture (cli_helpers.run_kdedge): kdedge("distill", "quickstart_mnist",
    "--out", path) -> (returncode, stdout, stderr). tests/test_cli.py runs each command once in a real process."""
    return run_kdedge


@pytest.fixture(scope="session")
def finished_run(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    """(run directory, the distill process) of one tiny real MNIST distillation, shared by the session: also
    the smoke test of `kdedge distill` in a real process. Tests must not modify it: copy it first."""
    out = tmp_path_factory.mktemp("finished") / "run"
    result = run_subprocess("distill", "hinton_mnist", *TINY_ARGS, "--out", out, "--data-root", data_root)
    assert result.returncode == 0, result.stderr
    return out, result


# Checks slower than ~10 s on a quiet 2-core CPU (measured with `pytest --durations`; see
# docs/development.md): `make test` leaves them out (-m "not slow"), `make test-all` runs them. Listed here,
# by file::test (all its parameters), rather than decorated one by one, so the list is in one place; a test
# decorated with @pytest.mark.slow in its own file is slow too.
SLOW = {
    "test_alpha_study.py::test_real_mnist_alpha_sweep_then_report",
    "test_bench.py::test_json_rows_have_the_schema_and_every_row_ran",
    "test_bench.py::test_flops_and_params_match_the_models",
    "test_bench.py::test_accuracy_equals_the_runs_own_and_an_independent_onnxruntime_loop",
    "test_bench.py::test_deployable_is_marked_and_export_target_writes_it",
    "test_bench.py::test_bare_onnx_files_with_a_crashing_and_a_skipped_row",
    "test_biasfix.py::test_distill_with_bias_fix_saves_both_students_and_reports_omitted_errors",
    "test_cifar.py::test_missing_batch_is_one_line_exit_2",
    "test_cifar.py::test_teacher_checkpoint_mismatch_is_one_line_exit_2",
    "test_cifar.py::test_model_forward_and_onnx_export",
    "test_ddp.py::test_two_gloo_processes_match_one_process",
    "test_export.py::test_fp32_parity_at_two_untraced_batch_sizes",
    "test_packaging.py::test_installed_wheel_runs_recipes_by_name_outside_the_repo",
    "test_report.py::test_report_of_a_run_with_bias_fix",
    "test_retinamnist.py::test_a_few_batches_of_each_student_recipe",
    # a second whole search; the slow chaos test stops the same search ten times (SIGTERM, SIGINT, SIGKILL)
    # and checks the same outcome, and test_study stops a study with SIGTERM through the same stop code
    "test_search_run.py::test_a_search_stopped_by_sigterm_resumes_to_the_same_result",
    "test_sweep.py::test_distill_of_a_recipe_with_a_sweep_section_runs_the_sweep",
    "test_teacher_check.py::test_a_teacher_at_chance_is_a_warning_line_and_a_summary_flag",
    "test_tensorboard.py::test_cli_writes_events_only_when_asked",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if f"{item.path.name}::{item.originalname}" in SLOW:
            item.add_marker(pytest.mark.slow)
