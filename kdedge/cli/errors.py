"""How a failed `kdedge` command ends: one line on stderr and its exit code. A Ctrl-C says what was saved and
the exact command that continues; a NaN stop offers the retry with a lower lr. Both repeat the user's own
command line (`args`, the words after `kdedge`), never rewritten."""

from __future__ import annotations

import shlex

from kdedge.errors import Diverged, Interrupted


def rerun(args: list[str], drop: tuple[str, ...], add: list[str]) -> str:
    """This very command line (recipe, --set values and all), without the options in `drop` (and their
    values), plus `add`: the command a user can paste to continue or retry."""
    kept: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in drop:
            skip = arg != "--force"  # --force takes no value
        elif not arg.startswith(tuple(f"{d}=" for d in drop)):
            kept.append(arg)
    return shlex.join(["kdedge", *kept, *add])


def interrupted_line(err: Interrupted, args: list[str]) -> str:
    """Ctrl-C: one line with what was saved and the exact command that continues."""
    if err.run_dir is None:
        return f"{err.what}; saved: {err.saved}; continue with the same command: {rerun(args, (), [])}"
    resume = rerun(args, ("--out", "--force", "--resume"), ["--resume", str(err.run_dir)])
    return f"{err.what}; saved: {err.saved}; continue with: {resume}"


def diverged_line(err: Diverged, args: list[str]) -> str:
    """A NaN stop: --resume would refuse a changed recipe, so offer a fresh start with a lower lr."""
    if err.lr is None:
        return f"error: {err}"
    resumed = next((b for a, b in zip(args, args[1:], strict=False) if a == "--resume"), None)
    lower = ["--set", f"{err.stage}.lr={err.lr / 10:g}", *(["--out", resumed] if resumed else []), "--force"]
    retry = rerun(args, ("--force", "--resume"), lower)
    why = "a new run; --resume continues only the same recipe"
    return f"error: {err}; retry with a lower lr ({why}): {retry}"
