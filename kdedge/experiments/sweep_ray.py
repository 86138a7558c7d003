"""`kdedge sweep --backend ray`: the sweep's points as Ray tasks, on this machine or a cluster.

The driver (this process) trains or loads the teacher once (experiments.sweep.shared_teacher, as the local
backend does), has ONE Ray task compute the teacher's training-set logits (on a worker with a point's
resources, so GPU points reuse logits computed on a GPU), then submits one task per unfinished point with
--cpus-per-point / --gpus-per-point. Ray sets CUDA_VISIBLE_DEVICES for a task, so a point's `device: auto`
trains on the GPU Ray gave it (and on the CPU when it was given none).

Failures: a point whose own config fails (kdedge's InputError / RuntimeFailure: bad value, NaN loss) is
reported once; anything else (a crashed worker, a lost node, an unexpected exception) is retried up to
--retries times by Ray, then reported. Reported points are listed at the end and the command exits 1;
finished points are in sweep.csv and a rerun trains only what is missing.

Files: see sweep_ray_point (shared filesystem or not). The driver writes sweep.json/.csv/.md and the
heat map itself, from the same summaries as the local backend, so they are the same files.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kdedge.errors import InputError, KdedgeError
from kdedge.experiments.sweep_ray_point import (
    LOGITS_FILE,
    TOKEN_FILE,
    AttemptTracker,
    Shared,
    teacher_logits,
    train_point,
)
from kdedge.experiments.sweep_results import cell, is_finished, metric_value, sort_rows
from kdedge.files.atomic import atomic_write, atomic_write_text
from kdedge.files.child import SAFE_PATH, in_package_root
from kdedge.files.rundir import RunDir
from kdedge.recipe import Recipe
from kdedge.runtime.threads import point_threads

INSTALL = "pip install 'kdedge-distill[ray]'"
PLACEMENT_FILE = "ray_points.json"


@dataclass(frozen=True)
class RayOptions:
    """The --backend ray options. address None: start Ray here (all CPUs, or `cpus`)."""

    address: str | None = None
    cpus: int | None = None
    cpus_per_point: float = 1.0
    gpus_per_point: float = 0.0
    retries: int = 2
    shared_fs: bool | None = None  # None: detected per worker; False: always send files back (tests)


def import_ray() -> Any:
    """The ray module, or the one-line InputError naming the install command (before any work)."""
    try:
        import ray
    except ImportError:
        raise InputError(f"--backend ray needs Ray, which is not installed: {INSTALL}") from None
    return ray


@contextlib.contextmanager
def ray_session(ray: Any, options: RayOptions) -> Iterator[None]:
    """Ray for the sweep: one already initialised (tests) is used as is; else a cluster joined at
    options.address, or a Ray started here and shut down afterwards. Worker output stays in Ray's logs
    (the driver owns the terminal: one progress display)."""
    if ray.is_initialized():
        yield
        return
    start: dict[str, Any] = (  # a Ray started here: no dashboard and no start-up notices (the display is ours)
        {"address": options.address, "logging_level": "WARNING"}
        if options.address
        else {"num_cpus": options.cpus, "include_dashboard": False, "logging_level": "ERROR"}
    )
    try:  # in_package_root: workers import the driver's kdedge, not a `kdedge/` folder where it was started
        with in_package_root():
            ray.init(**start, log_to_driver=False, runtime_env={"env_vars": dict(SAFE_PATH)})
    except (ConnectionError, ValueError, RuntimeError) as error:
        where = f"--address {options.address}" if options.address else "a local Ray"
        raise InputError(f"{where}: Ray could not start or connect ({str(error).splitlines()[0]})") from None
    try:
        yield
    finally:
        ray.shutdown()


def _attempt(point_fn: Callable, tracker: Any, name: str, *args: Any) -> dict:
    """One attempt of a point, in a worker. A KdedgeError (bad input, NaN loss) comes back as a result,
    so Ray does not retry it; any other exception propagates and Ray retries it."""
    from ray.util import get_node_ip_address

    from kdedge.experiments.sweep_ray_point import gpu_ids

    tracker.started.remote(name)
    try:
        return point_fn(*args) | {"node": get_node_ip_address(), "gpus": gpu_ids()}
    except KdedgeError as error:
        return {"error": f"{type(error).__name__}: {error}"}


def run_points(
    recipes: list[Recipe],
    paths: list[Path],
    data_root: str | None,
    jobs: int,
    progress=None,
    *,
    sweep_dir: Path,
    options: RayOptions,
    metric: str,
    point_fn: Callable = train_point,
) -> list[str]:
    """experiments.sweep's runner for --backend ray: train the unfinished points (recipes[i] into paths[i])
    as Ray tasks; returns 'point (error)' for each point that failed for good. `jobs` is the local
    backend's and unused here; `point_fn` is what a task runs (tests swap in one that fails)."""
    ray = import_ray()
    todo = [i for i, path in enumerate(paths) if not is_finished(path)]
    if not todo:
        return []
    with ray_session(ray, options):
        _check_fits(ray.cluster_resources(), options)
        shared = _share(ray, recipes, paths, todo, sweep_dir, data_root, options)
        tracker = ray.remote(num_cpus=0)(AttemptTracker).remote()
        task = ray.remote(_attempt).options(
            num_cpus=options.cpus_per_point,
            num_gpus=options.gpus_per_point,
            max_retries=options.retries,
            retry_exceptions=True,
        )
        names = [str(path.relative_to(sweep_dir)) for path in paths]  # points/<k=v,...>, baseline
        view = _ProgressView(progress, names, paths, metric)
        refs = {
            task.remote(point_fn, tracker, names[i], recipes[i].to_dict(), names[i], shared, data_root): i for i in todo
        }
        return _collect(ray, refs, sweep_dir, names, tracker, view)


def _check_fits(total: dict[str, float], options: RayOptions) -> None:
    """A point asking for more than the whole cluster has would wait forever: bad input, said now."""
    for key, need, flag in (
        ("CPU", options.cpus_per_point, "--cpus-per-point"),
        ("GPU", options.gpus_per_point, "--gpus-per-point"),
    ):
        if need > total.get(key, 0):
            raise InputError(f"{flag} {need:g}: the Ray cluster has {total.get(key, 0):g} {key}s in all")


def _share(
    ray: Any,
    recipes: list[Recipe],
    paths: list[Path],
    todo: list[int],
    sweep_dir: Path,
    data_root: str | None,
    options: RayOptions,
) -> Shared:
    """What every point reads, put into Ray's object store once: the teacher's weights and its logits
    (computed by one task). The token file lets a worker find out whether it sees SWEEP."""
    token = uuid.uuid4().hex
    atomic_write_text(sweep_dir / TOKEN_FILE, token)
    shared = Shared(str(sweep_dir), token, options.shared_fs, threads=point_threads(options.cpus_per_point))
    teacher = next((r.teacher.checkpoint for r in recipes if r.teacher and r.teacher.checkpoint), None)
    if teacher:
        from kdedge.models.weights import weights_path

        shared.teacher_path = str(weights_path(teacher, "teacher"))
        shared.teacher_ref = ray.put(Path(shared.teacher_path).read_bytes())
    kd = [i for i in todo if recipes[i].teacher and recipes[i].distillation.loss != "none"]
    if kd and paths[kd[0]].parent.name == "points":  # points read SWEEP/teacher_logits.safetensors
        logits = ray.remote(teacher_logits).options(
            num_cpus=options.cpus_per_point, num_gpus=options.gpus_per_point, max_retries=options.retries
        )
        try:
            data = ray.get(logits.remote(recipes[kd[0]].to_dict(), shared, data_root))
        except ray.exceptions.RayTaskError as error:  # e.g. bad data root: one line, nothing trained
            raise _as_kdedge_error(error) from None
        if data is not None:
            atomic_write(sweep_dir / LOGITS_FILE, lambda tmp: tmp.write_bytes(data))
            shared.logits_ref = ray.put(data)
    return shared


def _collect(ray: Any, refs: dict, sweep_dir: Path, names: list[str], tracker: Any, view: _ProgressView) -> list[str]:
    """Wait for every task, writing sent-back files as results arrive; the progress view refreshed about
    once a second. Returns the failures."""
    failures: dict[int, str] = {}
    placed: dict[str, dict] = {}
    pending = list(refs)
    while pending:
        done, pending = ray.wait(pending, num_returns=1, timeout=1.0)
        for ref in done:
            i = refs[ref]
            try:
                result = ray.get(ref)
            except ray.exceptions.RayError as error:  # retries used up: a crash, a lost node, an exception
                result = {"error": _first_line(error)}
            if "error" in result:
                failures[i] = result["error"]
                view.failed(names[i], result["error"])
                continue
            if "files" in result:
                write_returned(sweep_dir / names[i], result["files"])
            placed[names[i]] = {"node": result.get("node"), "gpus": result.get("gpus")}
            view.finished(names[i], result["summary"])
        view.update(ray.get(tracker.counts.remote()))
    _write_placement(sweep_dir, placed, failures, names, ray.get(tracker.counts.remote()))
    return [f"{names[i]} ({failures[i]})" for i in sorted(failures)]  # grid order, not the order they failed


def _write_placement(
    sweep_dir: Path, placed: dict, failures: dict[int, str], names: list[str], attempts: dict[str, int]
) -> None:
    """SWEEP/ray_points.json: where each point of this and earlier runs trained (node, GPU ids Ray gave
    it), how many attempts it took, and why it failed: for auditing GPU pinning and retries."""
    path = sweep_dir / PLACEMENT_FILE
    record = json.loads(path.read_text()) if path.is_file() else {}
    for name, where in placed.items():
        record[name] = where | {"attempts": attempts.get(name, 1), "status": "finished"}
    for i, error in failures.items():
        record[names[i]] = {"attempts": attempts.get(names[i], 1), "status": "failed", "error": error}
    atomic_write_text(path, json.dumps(record, indent=1, sort_keys=True))


def write_returned(folder: Path, files: dict[str, bytes]) -> None:
    """Write a point's files sent back by a worker that does not see SWEEP, each atomically, summary.json
    last: a folder is only 'finished' once everything else is in place."""
    for name in sorted(files, key=lambda n: n == "summary.json"):
        atomic_write(folder / name, lambda tmp, data=files[name]: tmp.write_bytes(data))


def _as_kdedge_error(error: Exception) -> KdedgeError:
    cause = getattr(error, "cause", None)
    return cause if isinstance(cause, KdedgeError) else InputError(f"sweep (ray): {_first_line(error)}")


def _first_line(error: Exception) -> str:
    """The useful line of a Ray error: the original exception's, else Ray's own first line."""
    cause = getattr(error, "cause", None)
    if cause is not None:
        return f"{type(cause).__name__}: {str(cause).strip().splitlines()[0] if str(cause).strip() else ''}"
    lines = [line for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0] if lines else ''}"


class _ProgressView:
    """The driver's one progress line: points done / running / failed (and retried), the best so far."""

    def __init__(self, progress, names: list[str], paths: list[Path], metric: str) -> None:
        self.progress, self.metric = progress, metric
        self.settled: dict[str, str] = {}  # name -> "done" | "failed"
        self.rows = [
            self._row(n, RunDir(p).read_summary())
            for n, p in zip(names, paths, strict=True)
            if is_finished(p) and n.startswith("points")
        ]
        todo = sum(1 for p in paths if not is_finished(p))
        self.task = progress.add_task("ray", total=todo) if progress else None
        self.update({})

    def _row(self, name: str, summary: dict) -> dict:
        keys = [part.partition("=") for part in Path(name).name.split(",")]
        short = ",".join(f"{key.split('.')[-1]}={value}" for key, _, value in keys)  # alpha=0.5,temperature=2
        return {"name": short, self.metric: metric_value(summary, self.metric)}

    def finished(self, name: str, summary: dict) -> None:
        self.settled[name] = "done"
        if name.startswith("points"):  # a no-KD baseline is no candidate for the best point
            self.rows.append(self._row(name, summary))
        if self.progress:
            self.progress.advance(self.task)

    def failed(self, name: str, error: str) -> None:
        self.settled[name] = "failed"
        if self.progress and not self.progress.disable:  # --quiet: the closing error line names it
            self.progress.console.print(f"[red]point failed[/] {name}: {error}")
            self.progress.advance(self.task)

    def update(self, attempts: dict[str, int]) -> None:
        """Refresh the line from the attempts the tracker counted ({name: attempts started})."""
        if not self.progress:
            return
        states = list(self.settled.values())
        running = sum(1 for name in attempts if name not in self.settled)
        retried = sum(count - 1 for count in attempts.values())
        text = f"ray: {states.count('done')} done, {running} running, {states.count('failed')} failed"
        text += f" ({retried} retried)" if retried else ""
        if self.rows:
            best = sort_rows(self.rows, self.metric)[0]
            text += f"; best {self.metric} {cell(best[self.metric])} ({best['name']})"
        self.progress.update(self.task, description=text)
