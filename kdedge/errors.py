"""Errors a user can act on. The CLI prints them as one line and exits with `exit_code`."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path


class KdedgeError(Exception):
    """A failure with a one-line explanation. exit_code 2 = bad input, 1 = runtime failure."""

    exit_code = 1


class InputError(KdedgeError):
    """The user handed us something invalid: a file, a field, a name, a value."""

    exit_code = 2


class RuntimeFailure(KdedgeError):
    """The input was valid but the work failed (non-finite loss, export mismatch, ...)."""

    exit_code = 1


class Diverged(RuntimeFailure):
    """The loss stopped being finite: the stage and learning rate, so the CLI can say how to retry."""

    def __init__(self, message: str, stage: str, lr: float | None = None) -> None:
        super().__init__(message)
        self.stage, self.lr = stage, lr


class Interrupted(KdedgeError):
    """Ctrl-C (SIGINT) during a run. saved: what is on disk (one phrase); run_dir: the run `--resume`
    continues, or None when rerunning the same command continues (a sweep skips its finished points)."""

    exit_code = 130
    what = "interrupted"  # how the line starts (kdedge.train.stop.Stopped: "stopped by SIGTERM at a step ...")

    def __init__(self, saved: str, run_dir: Path | None = None) -> None:
        super().__init__(f"{self.what}; saved: {saved}")
        self.saved, self.run_dir = saved, run_dir


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """' did you mean 'x'?' for the closest choice, or '' when nothing is close."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" did you mean '{close[0]}'?" if close else ""
