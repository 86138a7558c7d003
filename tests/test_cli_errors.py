"""kdedge.cli.errors: a Ctrl-C and a NaN stop are one line each that says what was saved and the command that
works next (--resume, or a fresh start with a lower lr)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import one_error_line, run_kdedge, sigint_as_in_a_terminal, write_recipe


def test_ctrl_c_says_what_was_saved_and_the_resume_command_that_works(data_root: Path, tmp_path) -> None:
    """A real SIGINT to a real `kdedge distill` process after its first checkpoint: exit 130, one line naming
    the state file (complete and checksum-valid) and the exact --resume command; running that command finishes
    the run. Also the Ctrl-C case of tests/test_faults.py's faults sent to a real process."""
    import os
    import shlex
    import signal
    import subprocess
    import sys
    import time

    from kdedge.models.weights import load_state

    out = tmp_path / "run"
    args = [
        "distill",
        "hinton_mnist",
        "--set",
        "teacher.epochs=40",
        "--set",
        "student.epochs=1",
        "--set",
        "data.train_limit=200",
        "--set",
        "data.test_limit=100",
        "--set",
        "teacher.model_kwargs.hidden=[16]",
        "--out",
        str(out),
        "--data-root",
        str(data_root),
    ]
    env = os.environ | {"OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    process = subprocess.Popen(
        [sys.executable, "-m", "kdedge", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=sigint_as_in_a_terminal,
    )
    deadline = time.monotonic() + 120
    while not (out / "teacher.state.safetensors").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    lines = [line for line in err.splitlines() if line.strip()]
    assert process.returncode == 130 and len(lines) == 1 and "Traceback" not in err, err
    # saved at the step boundary after the signal (kdedge.train.stop), mid-epoch or at an epoch's end
    assert lines[0].startswith("stopped by SIGINT at a step boundary; saved: "), lines[0]
    assert f"saved: {out / 'teacher.state.safetensors'} (teacher, " in lines[0]
    load_state(out / "teacher.state.safetensors")  # complete and checksum-valid
    command = shlex.split(lines[0].split("continue with: ", 1)[1])
    assert command[0] == "kdedge" and command[-2:] == ["--resume", str(out)] and "--out" not in command
    assert "teacher.model_kwargs.hidden=[16]" in command  # the same recipe: --resume accepts it
    code, _, err = run_kdedge(*command[1:], "-q")  # the command as printed (the CLI in this process)
    assert code == 0, err
    assert (out / "student.safetensors").is_file() and not (out / "teacher.state.safetensors").exists()


@pytest.mark.slow
def test_a_nan_stop_offers_the_retry_that_works(tmp_path: Path, data_root: Path) -> None:
    """--resume refuses a changed lr, so the line offers a fresh start (--force, same --out) with lr / 10."""
    recipe = write_recipe(
        tmp_path / "r.yaml",
        teacher=None,
        distillation={"loss": "none"},
        student={"optimizer": "sgd", "schedule": "constant", "epochs": 1},
        data={"name": "mnist", "train_limit": 300, "test_limit": 100},
    )
    run = tmp_path / "run"
    code, _, err = run_kdedge(
        "distill", recipe, "-q", "--out", run, "--set", "student.lr=1e30", "--data-root", data_root
    )
    line = one_error_line(err)
    assert code == 1 and "student: loss became nan" in line
    retry = line.split("retry with a lower lr (a new run; --resume continues only the same recipe): ")[1]
    assert (
        retry == f"kdedge distill {recipe} -q --out {run} --set student.lr=1e30 --data-root {data_root} "
        "--set student.lr=1e+29 --force"
    )
    code, _, err = run_kdedge(*retry.replace("lr=1e+29", "lr=0.01").split()[1:])  # the user's lower lr
    assert code == 0, err  # the offered form (same --out, --force) is accepted where --resume is not
