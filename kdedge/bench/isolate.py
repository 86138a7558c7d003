"""Run one bench row in its own child process with a timeout.

A runtime that segfaults, aborts, hangs or is killed for memory takes down only its child; the parent
turns that into the row's `error: ...` status and goes on with the next row. The child is a fresh
`python -P -m kdedge.bench.worker` (not a fork), so no runtime's threads or allocator state leak between
rows; -P and PYTHONSAFEPATH (kdedge.files.child): it imports the installed kdedge whatever the working folder.
"""

from __future__ import annotations

import json
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from kdedge.files.child import child_env, python_module
from kdedge.runtime.threads import usable_cores

DEFAULT_ENTRY = "kdedge.bench.worker:measure_row"


def thread_env(threads: int) -> dict[str, str]:
    """Environment for a child limited to `threads` (OpenMP / MKL / OpenBLAS read these at start-up)."""
    names = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
    return child_env() | {name: str(threads) for name in names}


def run_isolated(payload: dict[str, Any], timeout_s: float, entry: str = DEFAULT_ENTRY) -> dict[str, Any]:
    """Call `entry` ("module:function") on `payload` in a child: its result dict, or an error status."""
    with tempfile.TemporaryDirectory(prefix="kdedge-bench-") as folder:
        request, answer = Path(folder) / "request.json", Path(folder) / "answer.json"
        request.write_text(json.dumps(payload))
        command = python_module("kdedge.bench.worker", entry, str(request), str(answer))
        try:
            proc = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=timeout_s,
                env=thread_env(int(payload.get("threads") or usable_cores())),
            )
        except subprocess.TimeoutExpired:
            return {"status": f"error: timed out after {timeout_s:g} s (child killed)"}
        if proc.returncode != 0 or not answer.is_file():
            return {"status": "error: " + describe_failure(proc.returncode, proc.stderr)}
        return json.loads(answer.read_text())


def describe_failure(returncode: int, stderr: str) -> str:
    """One line for a child that died: the signal (SIGKILL usually means out of memory) + its last message."""
    if returncode < 0:
        name = (
            signal.Signals(-returncode).name if -returncode in signal.Signals._value2member_map_ else str(-returncode)
        )
        what = f"child process killed by {name}" + (" (out of memory?)" if name == "SIGKILL" else "")
    else:
        what = f"child process exited with status {returncode}"
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return what + (f": {lines[-1][:160]}" if lines else "")
