"""Helpers for the tests: run the real CLI in this process (run_kdedge, what tests use) or, for the one smoke
test per command and the signal tests, as a subprocess (run_subprocess); write tiny recipes, checksum run
directories. Data comes from
$KDEDGE_DATA (real MNIST)."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import typer.main
import yaml

REPO = Path(__file__).resolve().parents[1]
KDEDGE = [sys.executable, "-m", "kdedge"]
# one intra-op thread per test process: on a shared 2-core machine idle OpenMP workers spinning against
# other jobs cost more CPU than the tiny models here gain (resumed and reference runs use the same setting)
ENV = os.environ | {"OMP_NUM_THREADS": "1"}
_TYPER_GET_COMMAND = typer.main.get_command

# ~2 s of training on 2 CPU cores: 1,000 real MNIST digits, a 32-unit teacher, a 16-unit student
TINY = {
    "name": "tiny",
    "seed": 0,
    "device": "cpu",
    "data": {"name": "mnist", "train_limit": 1000, "test_limit": 200},
    "teacher": {
        "model": "mlp",
        "model_kwargs": {"hidden": [32], "dropout": 0.2},
        "epochs": 1,
        "batch_size": 50,
        "lr": 0.05,
        "augment": "jitter",
    },
    "student": {
        "model": "mlp",
        "model_kwargs": {"hidden": [16]},
        "epochs": 3,
        "batch_size": 50,
        "lr": 0.01,
        "optimizer": "adam",
        "schedule": "cosine",
    },
    "distillation": {"loss": "hinton", "alpha": 0.7, "temperature": 4},
}

# `--set` values that shrink a packaged MNIST recipe (hinton_mnist) to seconds on 2 CPU cores: 600 real
# training / 200 test digits, one epoch per stage, a 64-unit teacher.
TINY_SET = (
    "teacher.epochs=1",
    "student.epochs=1",
    "data.train_limit=600",
    "data.test_limit=200",
    "teacher.model_kwargs.hidden=[64]",
)


def tiny_overrides(*changes: str) -> list[str]:
    """["--set", KEY=VALUE, ...] for TINY_SET, with `changes` ("key=value") replacing or adding keys:
    tiny_overrides("teacher.epochs=2") -> ["--set", "teacher.epochs=2", "--set", "student.epochs=1", ...]."""
    values = dict(item.split("=", 1) for item in TINY_SET)
    values |= dict(item.split("=", 1) for item in changes)
    return [arg for key, value in values.items() for arg in ("--set", f"{key}={value}")]


# A real but tiny distillation of hinton_mnist: 1,000 training / 200 test images, one epoch per stage, a
# 64-unit teacher. Seconds on 2 CPU cores; enough to exercise every file a run writes (conftest.finished_run).
TINY_ARGS = tiny_overrides("data.train_limit=1000")


def write_recipe(path: Path, **sections: dict) -> Path:
    """TINY with some sections replaced / merged (None removes a section), written as YAML."""
    config = {k: (dict(v) if isinstance(v, dict) else v) for k, v in TINY.items()}
    for key, value in sections.items():
        if value is None:
            config.pop(key, None)
        elif isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = config[key] | value
        else:
            config[key] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


class CliResult(NamedTuple):
    """What `kdedge ARGS` did: unpack it (`code, out, err = run_kdedge(...)`) or read it as a
    subprocess.CompletedProcess (`.returncode`, `.stdout`, `.stderr`)."""

    returncode: int
    stdout: str
    stderr: str


def run_kdedge(*args: object, env: dict[str, str] | None = None) -> CliResult:
    """`kdedge ARGS` through the real entry point (kdedge.cli.main: errors -> one line + exit code) in this
    process: the subprocess's interface without its ~3 s of importing torch. `env` is set for the call only
    (KDEDGE_DEBUG is unset unless `env` sets it, so one test's --debug never reaches the next); the consoles
    are 200 columns wide (as run_subprocess's COLUMNS) and torch uses one thread (tiny models on a shared
    2-core box); everything is restored afterwards."""
    from kdedge.cli import main

    out, err = io.StringIO(), io.StringIO()
    code: int | str | None = 0
    words = [str(arg) for arg in args]
    with _call_settings(words, env or {}):
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                main(words)
        except SystemExit as exc:
            code = exc.code
    return CliResult(code if isinstance(code, int) else (0 if code is None else 1), out.getvalue(), err.getvalue())


@functools.cache
def _click_command(app: Any, shell_detection_off: str | None) -> Any:
    """typer.main.get_command(app), built once per test process: Typer builds the Click command of every
    command anew on each call of the app (~25 ms: every command's signature read again), which the
    hundreds of in-process calls here would pay each time. The build reads one environment variable
    (Typer's shell-detection switch for --install-completion), so it is part of the key."""
    return _TYPER_GET_COMMAND(app)


def _cached_get_command(app: Any) -> Any:
    """typer.main.get_command with the Click command of each app reused (_click_command)."""
    return _click_command(app, os.environ.get("_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION"))


@contextlib.contextmanager
def _call_settings(words: list[str], env: dict[str, str]) -> Iterator[None]:
    """For one in-process call: sys.argv (kdedge WORDS), `env` (without a leftover KDEDGE_DEBUG), 200-column
    consoles, one torch thread and the app's Click command built once (_click_command); each restored
    afterwards."""
    from kdedge.ui import console

    saved_env = {key: os.environ.get(key) for key in {*env, "KDEDGE_DEBUG"}}
    saved_argv, saved_widths = sys.argv, [c._width for c in (console.console, console.error_console)]
    threads = _one_torch_thread()
    os.environ.pop("KDEDGE_DEBUG", None)
    os.environ.update(env)
    try:
        sys.argv = ["kdedge", *words]
        console.console.width = console.error_console.width = 200
        typer.main.get_command = _cached_get_command  # Typer.__call__ looks it up here on each call
        yield
    finally:
        typer.main.get_command = _TYPER_GET_COMMAND
        sys.argv = saved_argv
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        console.console._width, console.error_console._width = saved_widths
        if threads:
            sys.modules["torch"].set_num_threads(threads)


def _one_torch_thread() -> int | None:
    """Set torch to one intra-op thread when torch is already imported; returns the previous count."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    return threads


def run_subprocess(
    *args: object,
    cwd: Path | None = REPO,
    env: dict[str, str] | None = None,
    executable: str | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess:
    """`python -m kdedge ARGS` in a fresh process (stdout, stderr as text); never raises on exit codes. For
    what needs a real process: the smoke test per command, signals, a changed PYTHONPATH.

    A wide COLUMNS keeps rich from wrapping one-line messages, as a user's wide terminal would.
    """
    command = [executable or sys.executable, "-m", "kdedge", *map(str, args)]
    full_env = os.environ | {"OMP_NUM_THREADS": "1", "COLUMNS": "200", "PYTHONUNBUFFERED": "1"} | (env or {})
    return subprocess.run(command, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)


def checksums(folder: Path) -> dict[str, str]:
    """relative path -> sha256 of every file under `folder`."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def one_error_line(stderr: str) -> str:
    """The single line a failed command printed; fails the test when there are more, or a traceback."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr, stderr
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{stderr}"
    return lines[0]


# Runs `kdedge predict` through kdedge.cli.main, then proves torch was never imported in this process.
TORCH_FREE_PREDICT = """
import contextlib, io, sys
from kdedge.cli import main
sys.argv = ["kdedge", "predict", *sys.argv[1:], "--json"]
out = io.StringIO()
try:
    with contextlib.redirect_stdout(out):
        main()
except SystemExit as exit:
    assert not exit.code, f"exit {exit.code}"
leaked = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
assert not leaked, f"torch was imported: {leaked[:5]}"
print(out.getvalue())
"""


def sigint_as_in_a_terminal() -> None:
    """Popen preexec_fn: SIGINT back to its default in the child, so Python installs its Ctrl-C handler there.
    A shell starts background jobs (`make test &`, nohup) with SIGINT ignored, and a child inherits that."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
