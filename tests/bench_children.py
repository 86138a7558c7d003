"""Bench rows whose child process misbehaves, for tests of kdedge.bench.isolate: `abort_row` crashes it,
`hang_row` never answers. Torch-free on purpose: the child (python -m kdedge.bench.worker with this module
as its entry) starts in well under a second, so a hanging one is hanging when its timeout kills it."""

from __future__ import annotations

import os
import time


def abort_row(payload: dict) -> dict:
    """A bench row whose runtime crashes the process (like OpenVINO compiling Swin int8 did)."""
    os.abort()


def hang_row(payload: dict) -> dict:
    """A bench row that never answers (a runtime stuck in a call)."""
    time.sleep(60)
    return {"status": "ok"}
