"""SIGTERM and Ctrl-C during training: save the training state at the next step boundary, then stop.

Schedulers (Slurm, Kubernetes, systemd) send SIGTERM and SIGKILL a grace period later. While
`graceful_stop()` is active the first SIGTERM or SIGINT only records itself; the training loop's step hook
(kdedge.train.checkpoint.Checkpoint) sees `pending()` after the step in flight, writes the state file and raises
Stopped, whose exit code is 128 + the signal number (143 for SIGTERM, 130 for Ctrl-C) as a shell
reports a signal, and whose line says what was saved and the exact `--resume` command (kdedge.cli);
that command continues bit for bit. A second signal stops at once (KeyboardInterrupt, said by the CLI
the same way): the last state file written stays valid, because every write is temp file + rename.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from kdedge.errors import Interrupted

SIGNALS = (signal.SIGTERM, signal.SIGINT)
_pending: list[int] = []  # the signal received while graceful_stop() is active (at most one)


class Stopped(Interrupted):
    """Training stopped on request after saving its state at a step boundary. The CLI prints it like a
    Ctrl-C (what was saved, the exact --resume command); exit code 128 + signal number."""

    def __init__(self, signum: int, saved: str, run_dir: Path) -> None:
        self.what = f"stopped by {signal_name(signum)} at a step boundary"
        super().__init__(saved, run_dir)
        self.exit_code = 128 + signum


def pending() -> int | None:
    """The signal number asking training to stop, or None."""
    return _pending[0] if _pending else None


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name


def _on_signal(signum: int, frame: FrameType | None) -> None:
    if _pending:  # the second one: no more waiting for a step boundary
        raise KeyboardInterrupt
    _pending.append(signum)


@contextmanager
def graceful_stop(enabled: bool = True) -> Iterator[None]:
    """Within the block, SIGTERM / SIGINT request a stop at the next step boundary (see module doc).
    Only the main thread may install handlers; elsewhere (or disabled: torchrun ranks) nothing changes."""
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return
    # a signal the parent told us to ignore (nohup, a background job's SIGINT) stays ignored
    wanted = [signum for signum in SIGNALS if signal.getsignal(signum) is not signal.SIG_IGN]
    previous = {signum: signal.signal(signum, _on_signal) for signum in wanted}
    _pending.clear()
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _pending.clear()
