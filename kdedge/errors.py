"""Errors a user can act on. The CLI prints them as one line and exits with `exit_code`."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class KdedgeError(Exception):
    """A failure with a one-line explanation. exit_code 2 = bad input, 1 = runtime failure."""

    exit_code = 1
    prefix = "error"  # the first word of the line the CLI prints


class InputError(KdedgeError):
    """The user handed us something invalid: a file, a field, a name, a value."""

    exit_code = 2


class RuntimeFailure(KdedgeError):
    """The input was valid but the work failed (non-finite loss, export mismatch, ...)."""

    exit_code = 1


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """' did you mean 'x'?' for the closest choice, or '' when nothing is close."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" did you mean '{close[0]}'?" if close else ""
