"""What a Ray worker does for `kdedge sweep --backend ray`: train one grid point, compute the shared
teacher's training-set logits once, or count the attempts of each point (AttemptTracker, an actor).
Imported only inside Ray workers and by experiments.sweep_ray; light at import (torch and kdedge's training
code are imported inside the functions), so the tracker's own process starts in about a second.

A worker that sees the driver's sweep folder (a shared filesystem: the same SWEEP/.sweep_token file with
the same content) writes the point's run folder in place, exactly as the local backend does. A worker that
does not (another machine, local disks) builds a private copy of what the point reads (teacher weights,
teacher logits) in a temporary folder laid out like SWEEP, trains there and returns the point's files;
the driver writes them (sweep_ray.write_returned). Paths inside the returned text files are
rewritten from the temporary folder to the driver's, so both setups leave the same files.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TOKEN_FILE = ".sweep_token"  # SWEEP/.sweep_token: a random id the driver writes; whoever reads it sees SWEEP
LOGITS_FILE = "teacher_logits.safetensors"  # SWEEP/teacher_logits.safetensors, as the local backend names it
TEXT_SUFFIXES = (".json", ".jsonl", ".yaml", ".md", ".csv", ".txt")  # files whose paths are rewritten


@dataclass
class Shared:
    """What every point reads, as the driver hands it to the workers. The refs sit inside this object, so
    Ray does not fetch them to a node that sees SWEEP and never needs them."""

    sweep_dir: str
    token: str
    shared_fs: bool | None = None  # None: each worker checks TOKEN_FILE; False forces copies (tests)
    teacher_path: str | None = None  # the teacher weights file on the driver
    teacher_ref: Any = None  # ObjectRef of its bytes
    logits_ref: Any = None  # ObjectRef of SWEEP/teacher_logits.safetensors' bytes (None: nothing cached)
    threads: int = 1  # torch threads per point: its --cpus-per-point


class AttemptTracker:
    """A tiny Ray actor that counts the attempts of each point (a task reports its own start), so the
    driver can show what is running and what was retried. It lives here, not in experiments.sweep_ray: an
    actor runs in a process of its own, which imports this module only (not torch: seconds per sweep)."""

    def __init__(self) -> None:
        self.attempts: dict[str, int] = {}

    def started(self, name: str) -> None:
        self.attempts[name] = self.attempts.get(name, 0) + 1

    def counts(self) -> dict[str, int]:
        return dict(self.attempts)


def sees_sweep_dir(shared: Shared) -> bool:
    """Whether this worker reads the driver's SWEEP folder (same machine or a shared filesystem)."""
    if shared.shared_fs is not None:
        return shared.shared_fs
    try:
        return (Path(shared.sweep_dir) / TOKEN_FILE).read_text() == shared.token
    except OSError:
        return False


@contextlib.contextmanager
def workspace(shared: Shared, config: dict) -> Iterator[tuple[Path, dict, dict[str, str]]]:
    """(root, config, replacements): the folder to train in (SWEEP itself, or a temporary copy holding the
    teacher weights and logits), the config pointing at that copy's teacher, and {worker path: driver path}
    to rewrite in the files sent back. The temporary folder is removed afterwards."""
    if sees_sweep_dir(shared):
        yield Path(shared.sweep_dir), config, {}
        return
    import ray

    with tempfile.TemporaryDirectory(prefix="kdedge-point-") as tmp:
        root, replacements = Path(tmp), {}
        if shared.teacher_ref is not None and config.get("teacher"):
            local = root / "shared_teacher" / Path(shared.teacher_path or "teacher.safetensors").name
            local.parent.mkdir()
            local.write_bytes(ray.get(shared.teacher_ref))
            replacements[str(local)] = config["teacher"]["checkpoint"]
            config = config | {"teacher": config["teacher"] | {"checkpoint": str(local)}}
        if shared.logits_ref is not None:
            (root / LOGITS_FILE).write_bytes(ray.get(shared.logits_ref))
        replacements[str(root)] = shared.sweep_dir
        yield root, config, replacements


def train_point(config: dict, rel: str, shared: Shared, data_root: str | None) -> dict:
    """Train the point SWEEP/<rel> (a resolved recipe as a dict). Returns {"summary": ...} and, when this
    worker does not see SWEEP, "files": {path relative to SWEEP/<rel>: bytes} for the driver to write.
    Bad input / failed training raise KdedgeError (reported once); anything else is retried by Ray."""
    from kdedge.experiments.sweep import _run_point

    with workspace(shared, config) as (root, config, replacements):
        summary = _run_point(config, str(root / rel), data_root, shared.threads)
        if not replacements:
            return {"summary": summary}
        return {"summary": summary, "files": collect_files(root / rel, replacements)}


def collect_files(folder: Path, replacements: dict[str, str]) -> dict[str, bytes]:
    """Every file of a finished run folder (not its lock), text files with worker paths replaced by the
    driver's (longest first: the teacher file lies inside the temporary root)."""
    files = {}
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.name == ".lock":
            continue
        data = path.read_bytes()
        if path.suffix in TEXT_SUFFIXES:
            text = data.decode()
            for old in sorted(replacements, key=len, reverse=True):
                text = text.replace(old, replacements[old])
            data = text.encode()
        files[str(path.relative_to(folder))] = data
    return files


def teacher_logits(config: dict, shared: Shared, data_root: str | None) -> bytes | None:
    """Bytes of the teacher-logits file for the point recipe `config` (train.teacher_cache's safetensors
    with its key), computed here, on a worker with a point's resources: the key holds the device type, so
    logits computed on a CPU-only driver would not be reused by GPU points. None: nothing to cache (random
    augmentations, or caching off). Where the worker sees SWEEP, the file is written there as well."""
    from kdedge.runtime.threads import limit

    limit(shared.threads)
    with workspace(shared, config) as (root, config, _):
        path = root / LOGITS_FILE
        if not compute_teacher_logits(config, data_root, path):
            return None
        return path.read_bytes()


def compute_teacher_logits(config: dict, data_root: str | None, path: Path) -> bool:
    """What a point's student stage computes first: the teacher's logits over its transfer set, saved at
    `path` (reused there when the key matches). The teacher and the logits come from the pipeline's own
    functions (obtain_teacher, teacher_logits), so the key is the one every point computes. False when the
    recipe caches no logits."""
    from kdedge.recipe import validate_recipe
    from kdedge.train.pipeline import make_context, obtain_teacher, prepare_data, teacher_logits

    recipe = validate_recipe(config, source="sweep teacher logits")
    bundle = prepare_data(recipe, data_root)
    ctx = make_context(recipe, bundle, teacher_logits_file=path)
    teacher = obtain_teacher(recipe, bundle, ctx=ctx)  # teacher.checkpoint: the sweep's shared teacher
    return teacher_logits(recipe, bundle, teacher.model, ctx) is not None and path.is_file()


def gpu_ids() -> list:
    """The GPUs Ray gave this task (CUDA_VISIBLE_DEVICES is set to them, so device 'auto' -> cuda:0 is the
    first of them); [] on a CPU-only task."""
    import ray

    return list(ray.get_gpu_ids()) if os.environ.get("CUDA_VISIBLE_DEVICES") else []
