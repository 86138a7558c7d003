"""A graceful stop for experiments made of many runs (sweeps, searches): SIGTERM or Ctrl-C stops the training
in flight at a step boundary with its state saved (kdedge.train.stop), or waits for the measurement in
flight, and the command says what is saved and that rerunning the same command continues.

Use: inside `graceful_stop()`, call `check_stop(saved)` between units of work, and turn what a training
raised into the experiment's own line with `as_rerun_stop(err, saved)`.
"""

from __future__ import annotations

from collections.abc import Callable

from kdedge.errors import Interrupted
from kdedge.train import stop

__all__ = ["Stopped", "as_rerun_stop", "check_stop", "graceful_stop"]

graceful_stop = stop.graceful_stop
Stopped = stop.Stopped


def check_stop(saved: Callable[[], str]) -> None:
    """Raise Stopped (continue: the same command) when SIGTERM / Ctrl-C asked to stop. `saved()` says
    what is on disk, in one phrase."""
    signum = stop.pending()
    if signum:
        raise _stopped(signum, saved())


def as_rerun_stop(err: BaseException, saved: Callable[[], str]) -> Interrupted:
    """A stop raised inside one run (its line would name `--resume RUN`) or a second Ctrl-C
    (KeyboardInterrupt), as the experiment's stop: rerun the same command to continue."""
    if isinstance(err, stop.Stopped):
        return _stopped(err.exit_code - 128, saved())
    return Interrupted(saved(), None)


def _stopped(signum: int, saved: str) -> stop.Stopped:
    """Stopped, said as what happened: between two units of work there was no step boundary to wait for."""
    stopped = stop.Stopped(signum, saved, None)
    stopped.what = f"stopped by {stop.signal_name(signum)}"
    return stopped
