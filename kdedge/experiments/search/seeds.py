"""`--seeds N`: the pick and the recipe's own student, each trained with the recipe's full student schedule at
N seeds (the recipe's seed, +1, ...) and measured like a finalist (exported, benched: accuracy from the
file, latency again), so the search's answer is compared with the hand-picked student on more than one
training run. The seed-0 runs are the finalists' own when they are finalists."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kdedge.errors import Interrupted, KdedgeError
from kdedge.experiments.search import finalists as truth
from kdedge.experiments.search.candidate import CandidateJob, train_candidate
from kdedge.experiments.search.space import Candidate

KEPT = ("accuracy", "qwk", "latency_ms_p50", "latency_ms_p90", "size_mb", "peak_mem_mb", "status", "misses")


def seed_runs(
    chosen: dict[str, Candidate],
    seeds: list[int],
    make_job: Callable[[Candidate, int | None], CandidateJob],
    settings: truth.TruthSettings,
    check_stop: Callable[[], None],
    load: Callable | None = None,
) -> dict[str, dict[str, Any]]:
    """{role ('pick' / 'own'): {'name', 'runs': [one measurement per seed], 'accuracy_mean', ...}} for each
    chosen candidate; `make_job(candidate, seed)` is its full-schedule training at that seed; `load`: the
    search's DataMemo."""
    found: dict[str, dict[str, Any]] = {}
    for role, candidate in chosen.items():
        runs = []
        for seed in seeds:
            check_stop()
            runs.append(_one_seed(make_job(candidate, seed), seed, settings, load))
        check_stop()
        found[role] = {"name": candidate.name, "runs": runs} | _spread(runs)
    return found


def _one_seed(job: CandidateJob, seed: int, settings: truth.TruthSettings, load: Callable | None) -> dict[str, Any]:
    """Train (or read) one seed's run, then export and bench its file."""
    run_dir = Path(job.run_dir).resolve()
    try:
        train_candidate(job, load)
        measured = truth.bench_finalist(run_dir, truth.export_finalist(run_dir, settings), settings)
    except Interrupted:
        raise
    except KdedgeError as err:
        measured = {"status": f"error: {err}"}
    measured["misses"] = settings.budget.misses(measured) if measured["status"] == "ok" else []
    figures = {key: measured.get(key) for key in KEPT}
    for key in ("accuracy", "qwk"):
        figures[key] = None if figures[key] is None else round(figures[key], 4)
    return {"seed": seed, "run": str(job.run_dir)} | figures


def _spread(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and spread (max - min) of the seeds' accuracies (and QWK), over the runs that were measured."""
    values = [r["accuracy"] for r in runs if r.get("accuracy") is not None]
    qwk = [r["qwk"] for r in runs if r.get("qwk") is not None]
    out: dict[str, Any] = {"seeds": len(values)}
    if values:
        out |= {
            "accuracy_mean": round(statistics.fmean(values), 4),
            "accuracy_spread": round(max(values) - min(values), 4),
        }
    if qwk:
        out["qwk_mean"] = round(statistics.fmean(qwk), 4)
    return out
