"""Faults around a run, injected for real: a full disk (a small tmpfs), SIGTERM / Ctrl-C sent to a real
process, state files truncated or bit-flipped on disk, read-only folders (read-only mounts), stale locks.

Each fault must end in one line (exit code per docs/faults.md), no traceback, every file that was already
there intact, and `--resume` continuing the run bit for bit once the fault is gone.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from cli_helpers import (
    ENV,
    KDEDGE,
    REPO,
    checksums,
    one_error_line,
    run_kdedge,
    write_recipe,
)
from fault_helpers import fill_disk, flip_byte, read_only, resize_disk, small_disk, truncate
from hostile_files import good_model
from safetensors.torch import load_file

from kdedge.files.rundir import RunDir
from kdedge.models.weights import load_state

pytestmark = pytest.mark.usefixtures("one_torch_thread")
STUDENT_EPOCHS = 20  # 20 steps each; SIGSTOP (below) makes the signal land mid-stage anyway


def _distill(recipe: Path, *args: object) -> list[str]:
    return [*KDEDGE, "distill", str(recipe), "-q", *map(str, args)]


def _same_weights(a: Path, b: Path) -> bool:
    left, right = load_file(a), load_file(b)
    return left.keys() == right.keys() and all(torch.equal(left[k], right[k]) for k in left)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    """A recipe, a real process stopped by SIGTERM while its student trained (SIGSTOP first, so the signal lands
    mid-stage however loaded the box is) and the recipe's uninterrupted reference run (in this process, one
    thread, as the resumed runs below)."""
    tmp = tmp_path_factory.mktemp("faults")
    recipe = write_recipe(tmp / "r.yaml", student={"epochs": STUDENT_EPOCHS})
    victim = subprocess.Popen(
        _distill(recipe, "--out", tmp / "stopped"), cwd=REPO, env=ENV, stderr=subprocess.PIPE, text=True
    )
    state = tmp / "stopped" / "student.state.safetensors"
    deadline = time.monotonic() + 120
    while not state.exists() and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    victim.send_signal(signal.SIGSTOP)  # frozen: the SIGTERM below is handled mid-student, not after it
    victim.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    victim.send_signal(signal.SIGCONT)
    _, stderr = victim.communicate(timeout=60)
    seconds = time.monotonic() - sent
    code, _, err = run_kdedge("distill", recipe, "-q", "--out", tmp / "reference")
    assert code == 0, err
    return {
        "tmp": tmp,
        "recipe": recipe,
        "reference": tmp / "reference",
        "stopped": tmp / "stopped",
        "code": victim.returncode,
        "stderr": stderr,
        "seconds": seconds,
    }


def _copy(world: dict, name: str, to: Path) -> Path:
    shutil.copytree(world[name], to)
    return to


# -- SIGTERM / Ctrl-C --------------------------------------------------------------------------------------
def test_sigterm_saves_state_at_a_step_boundary_and_exits_143(world):
    line = one_error_line(world["stderr"])
    assert world["code"] == 128 + signal.SIGTERM, world["stderr"]
    state = world["stopped"] / "student.state.safetensors"
    teacher = world["stopped"] / "teacher.safetensors"
    saved = f"saved: {teacher}, {state} (student, epoch "
    assert line.startswith(f"stopped by SIGTERM at a step boundary; {saved}"), line
    assert line.endswith(f"continue with: kdedge distill {world['recipe']} -q --resume {world['stopped']}")
    assert world["seconds"] < 10, world["seconds"]
    assert not (world["stopped"] / ".lock").exists() and not (world["stopped"] / "student.safetensors").exists()


def test_resume_after_sigterm_is_bit_identical(world, tmp_path):
    run = _copy(world, "stopped", tmp_path / "run")
    code, _, err = run_kdedge("distill", world["recipe"], "-q", "--resume", run)  # as the other faults' resumes
    assert code == 0, err
    for stage in ("teacher", "student"):
        assert _same_weights(world["reference"] / f"{stage}.safetensors", run / f"{stage}.safetensors"), stage


# Ctrl-C sent to a real process (exit 130, one line, a complete state file, the --resume command that
# works): tests/test_cli_errors.py, where one real `kdedge distill` process is checked for all of it


def test_second_ctrl_c_stops_at_once():
    """The handler itself, with real signals to this process: the first is recorded, the second raises."""
    from kdedge.train import stop

    before = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal, also under nohup
    with stop.graceful_stop():
        signal.raise_signal(signal.SIGINT)
        assert stop.pending() == signal.SIGINT
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
            time.sleep(1)  # the handler runs between bytecodes: at once, not after the sleep
    assert stop.pending() is None and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    signal.signal(signal.SIGINT, before)


# -- corrupt files (power loss: truncated, bits flipped) ---------------------------------------------------
@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_corrupt_training_state_is_refused_and_kept(world, tmp_path, damage):
    run = _copy(world, "stopped", tmp_path / "run")
    state = run / "student.state.safetensors"
    flip_byte(state) if damage == "flip" else truncate(state)
    before = checksums(run)
    code, _, err = run_kdedge("distill", world["recipe"], "-q", "--resume", run)
    line = one_error_line(err)
    assert code == 2 and str(state) in line, line
    assert (
        ("corrupt" in line) if damage == "flip" else ("not a valid safetensors file" in line or "not a kdedge" in line)
    ), line
    assert checksums(run) == before


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_corrupt_weights_are_refused(world, tmp_path, damage):
    run = _copy(world, "reference", tmp_path / "run")
    flip_byte(run / "student.safetensors") if damage == "flip" else truncate(run / "student.safetensors")
    before = checksums(run)
    code, _, err = run_kdedge("eval", run)
    line = one_error_line(err)
    assert code == 2 and f"{run / 'student.safetensors'}: " in line, line
    assert "corrupt" in line or "not a valid safetensors file" in line
    assert checksums(run) == before


def test_corrupt_logits_cache_is_recomputed_and_said_once(world, tmp_path):
    run = _copy(world, "stopped", tmp_path / "run")
    cache = run / "teacher_logits.safetensors"
    flip_byte(cache)
    code, _, err = run_kdedge("distill", world["recipe"], "-q", "--resume", run)
    assert code == 0, err
    warnings = [line for line in err.splitlines() if line.strip()]
    assert len(warnings) == 1 and warnings[0].startswith(f"warning: teacher logits cache {cache} is corrupt")
    assert _same_weights(world["reference"] / "student.safetensors", run / "student.safetensors")
    load_state(cache)  # rewritten, valid again


# -- a full disk -------------------------------------------------------------------------------------------
def test_disk_full_mid_run_keeps_files_and_resumes(world, tmp_path):
    """A 450 kB tmpfs: the teacher (state, weights) and the first student states fit, a later student state
    does not; the line names the file; after the disk grows `--resume` ends where the reference run ended."""
    with small_disk(tmp_path / "disk", 450) as disk:
        run = disk / "run"
        code, _, err = run_kdedge("distill", world["recipe"], "-q", "--out", run)
        line = one_error_line(err)
        assert code == 1, err
        assert f"{run}/" in line and ": no space left on device (needs about " in line, line
        assert f"free space, then continue with --resume {run}" in line
        assert not list(run.glob(".*.tmp")) and not (run / ".lock").exists()
        for file in run.glob("*.safetensors"):
            load_state(file)  # every file there is complete: its checksum matches
        resize_disk(disk, 4000)
        code, _, err = run_kdedge("distill", world["recipe"], "-q", "--resume", run)
        assert code == 0, err
        assert _same_weights(world["reference"] / "student.safetensors", run / "student.safetensors")


def _write_bench_table(path: Path) -> None:
    from kdedge.bench.results import write_json

    write_json({"rows": [{"x": "y" * 10_000}]}, path)


def _write_logits_cache(path: Path) -> None:
    from kdedge.train.teacher_cache import load_or_compute

    load_or_compute(path, "new-key", lambda: torch.ones(2000, 10), True, torch.device("cpu"))


def _write_weights(path: Path) -> None:
    from kdedge.files.atomic import save_state

    save_state(path, {"w": torch.ones(5000)})


@pytest.mark.parametrize(
    ("name", "write"),
    [
        ("bench.json", _write_bench_table),
        ("teacher_logits.safetensors", _write_logits_cache),
        ("student.safetensors", _write_weights),
    ],
)
def test_disk_full_while_writing_a_file_keeps_the_old_one(tmp_path, name, write):
    """Each kind of file on a full tmpfs: DiskFull names it and the space it needs; the old one stays."""
    from kdedge.files.fsguard import DiskFull

    with small_disk(tmp_path / "disk", 64) as disk:
        target = disk / name
        target.write_bytes(b"previous content")
        fill_disk(disk)
        with pytest.raises(DiskFull, match=rf"{name}: no space left on device \(needs about .*previous"):
            write(target)
        assert target.read_bytes() == b"previous content" and not list(disk.glob(".*.tmp"))


def test_disk_full_during_export_is_one_line(world, tmp_path):
    with small_disk(tmp_path / "disk", 2000) as disk:
        run = _copy(world, "reference", disk / "run")
        fill_disk(disk, leave_bytes=20_000)
        before = checksums(run)
        code, _, err = run_kdedge("export", run, "--model", "student", "--precision", "fp32")
        line = one_error_line(err)
        assert code == 1 and f"{run / 'export' / 'student.fp32.onnx'}: no space left on device" in line, line
        assert checksums(run) == before and not (run / "export").exists()


# -- read-only folders -------------------------------------------------------------------------------------
def test_read_only_out_folder_is_said_before_any_work(world, tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    with read_only(folder):
        code, _, err = run_kdedge("distill", world["recipe"], "-q", "--out", folder / "run")
        line = one_error_line(err)
        assert code == 2 and f"run directory {folder / 'run'}: cannot write there (Read-only file system)" in line
        assert not (folder / "run").exists()
        model = good_model(tmp_path / "m.onnx")
        code, _, err = run_kdedge("bench", model, "--runtimes", "onnxruntime", "--json", folder / "t.json")
        line = one_error_line(err)
        assert code == 2 and f"--json {folder}: cannot write there (Read-only file system)" in line, line


def test_read_only_run_cannot_be_resumed_or_exported(world, tmp_path):
    run = _copy(world, "stopped", tmp_path / "run")
    before = checksums(run)
    with read_only(run):
        code, _, err = run_kdedge("distill", world["recipe"], "-q", "--resume", run)
        assert code == 2 and "cannot write there (Read-only file system)" in one_error_line(err)
        code, _, err = run_kdedge("export", run, "--model", "teacher", "--precision", "fp32")
        line = one_error_line(err)
        assert code == 2 and f"export folder {run / 'export'}: cannot write there" in line, line
    assert checksums(run) == before


def test_stale_lock_is_taken_over_and_said_once(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    dead = subprocess.Popen(["true"])
    dead.wait()
    (run / ".lock").write_text(str(dead.pid))
    RunDir(run).open_for_writing(force=False).release()
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if line] == [
        f"warning: {run / '.lock'}: took over the lock of process {dead.pid}, which no longer runs"
    ]
    assert not (run / ".lock").exists()


# -- the APTOS data cache: read-only or full falls back to memory, said once -------------------------------
@pytest.mark.parametrize("fault", ["read-only", "full"])
def test_data_cache_fault_falls_back_to_memory_said_once(tmp_path, capsys, fault):
    from aptos_fixture import make_aptos

    from kdedge.data.load import load_data

    make_aptos(tmp_path / "data", count=30, seed=0, max_side=64)
    cache = tmp_path / "cache"
    cache.mkdir()
    broken = read_only(cache) if fault == "read-only" else small_disk(cache, 16)
    with broken:
        capsys.readouterr()
        bundle = load_data("aptos", str(tmp_path / "data"), 32, {"cache_dir": str(cache)})
        lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert len(lines) == 1, lines
        if fault == "read-only":
            assert lines[0].startswith(f"warning: APTOS data cache {cache}: cannot write there (Read-only")
        else:
            assert "no space left on device" in lines[0] and "were not cached" in lines[0], lines[0]
        assert not list(cache.iterdir())  # nothing half-written
    assert len(bundle.train) > 0 and bundle.train.images.shape[1:] == (3, 32, 32)


def test_second_process_on_a_locked_run_is_refused(world, tmp_path):
    """A lock held by a live process (a real one, sleeping): refused with one line, nothing touched."""
    run = _copy(world, "stopped", tmp_path / "run")
    owner = subprocess.Popen(["sleep", "30"])
    try:
        (run / ".lock").write_text(str(owner.pid))
        before = checksums(run)
        code, _, err = run_kdedge("distill", world["recipe"], "-q", "--resume", run)
        line = one_error_line(err)
        assert code == 2 and f"being written by another kdedge process (pid {owner.pid})" in line, line
        assert checksums(run) == before
    finally:
        owner.kill()
        owner.wait()
