"""Who trains a rung's candidates: this process, one after another, or Ray tasks (`--backend ray`, on
this machine or a cluster whose workers see the search folder), with the same results: each candidate is
one seeded training of its own recipe, wherever it runs.

Both stop early when the time bound (--hours) is reached, leaving the candidates not yet trained out of
the result; both stop at once, their state saved, on SIGTERM / Ctrl-C (kdedge.experiments.stopping).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from kdedge.errors import Interrupted, KdedgeError
from kdedge.experiments.search.candidate import CandidateJob, train_candidate
from kdedge.experiments.search.space import Candidate

JobMaker = Callable[[Candidate, int], CandidateJob]


def local_trainer(
    make_job: JobMaker, time_left: Callable[[], bool], check_stop: Callable[[], None], progress=None, load=None
):
    """Train each (candidate, epochs) here in turn; a candidate that fails (bad model, NaN loss) gets
    {'error': why} and the others go on. load: the search's DataMemo (data loaded once per input size)."""

    def train(pairs: list[tuple[Candidate, int]]) -> dict[str, dict[str, Any]]:
        results: dict[str, dict[str, Any]] = {}
        task = progress.add_task("train", total=len(pairs)) if progress is not None else None
        for candidate, epochs in pairs:
            check_stop()
            if not time_left():
                break
            if task is not None:
                progress.update(task, description=f"train: {candidate.name}, {epochs} epochs")
            try:
                results[candidate.name] = train_candidate(make_job(candidate, epochs), load)
            except Interrupted:
                raise
            except KdedgeError as err:
                results[candidate.name] = {"error": f"{type(err).__name__}: {err}"}
            if task is not None:
                progress.advance(task)
        if task is not None:
            progress.remove_task(task)
        return results

    return train


def _ray_task(job: CandidateJob) -> dict[str, Any]:
    """One candidate in a Ray worker. A KdedgeError (bad input, NaN loss) comes back as a result, so Ray
    does not retry it; anything else propagates and Ray retries it (a crashed worker, a lost node)."""
    try:
        return train_candidate(job)
    except KdedgeError as err:
        return {"error": f"{type(err).__name__}: {err}"}


@contextmanager
def ray_trainer(
    make_job: JobMaker, options, time_left: Callable[[], bool], check_stop: Callable[[], None], progress=None
) -> Iterator[Callable]:
    """A trainer that runs each rung's candidates as Ray tasks, `options.cpus_per_point` CPUs each (options:
    kdedge.experiments.sweep_ray.RayOptions; one Ray for the whole stage, started here or joined at
    options.address)."""
    from kdedge.experiments.sweep_ray import import_ray, ray_session

    ray = import_ray()
    with ray_session(ray, options):
        remote = ray.remote(_ray_task).options(
            num_cpus=options.cpus_per_point,
            num_gpus=options.gpus_per_point,
            max_retries=options.retries,
            retry_exceptions=True,
        )
        threads = max(1, int(options.cpus_per_point))

        def train(pairs: list[tuple[Candidate, int]]) -> dict[str, dict[str, Any]]:
            jobs = {c.name: make_job(c, e) for c, e in pairs}
            refs = {remote.remote(_with_threads(job, threads)): name for name, job in jobs.items()}
            return _collect(ray, refs, time_left, check_stop, progress)

        yield train


def _with_threads(job: CandidateJob, threads: int) -> CandidateJob:
    from dataclasses import replace

    return replace(job, threads=threads)


def _collect(ray, refs: dict, time_left: Callable[[], bool], check_stop: Callable[[], None], progress) -> dict:
    """Results as tasks finish; on a stop or when time is up, the tasks still running are cancelled (each
    keeps its last end-of-epoch checkpoint, so a rerun continues it)."""
    results: dict[str, dict[str, Any]] = {}
    pending = list(refs)
    task = progress.add_task("train (ray)", total=len(pending)) if progress is not None else None
    try:
        while pending:
            check_stop()
            if not time_left():
                break
            done, pending = ray.wait(pending, num_returns=1, timeout=1.0)
            for ref in done:
                try:
                    results[refs[ref]] = ray.get(ref)
                except ray.exceptions.RayError as err:  # retries used up
                    results[refs[ref]] = {"error": str(err).strip().splitlines()[0][:200]}
                if task is not None:
                    progress.advance(task)
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)
        if task is not None:
            progress.remove_task(task)
    return results
