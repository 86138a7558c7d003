"""What a spawned worker reports about its threads (imported by the worker: tests/ is on its sys.path)."""

from __future__ import annotations

import os


def threads_seen() -> tuple[str | None, int]:
    """(OMP_NUM_THREADS in this process, torch's intra-op threads once torch is imported here)."""
    import torch

    return os.environ.get("OMP_NUM_THREADS"), torch.get_num_threads()
