"""Stage 2 of a search: accuracy by successive halving (Jamieson & Talwalkar 2016; the synchronous form of
ASHA). Every survivor of the cost stage trains a short schedule; the best 1/eta of them (by validation
accuracy) train eta times longer; and so on until `finalists` remain, which train the recipe's full student
schedule. Each rung trains from scratch with its own number of epochs, so a finalist is exactly the
recipe's student schedule, comparable with a plain `kdedge distill` of the same student.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kdedge.experiments.search.space import Candidate

Trainer = Callable[[list[tuple[Candidate, int]]], dict[str, dict[str, Any]]]


@dataclass(frozen=True)
class Rung:
    """One round: `count` candidates train `epochs` epochs each."""

    index: int
    epochs: int
    count: int


def plan_rungs(count: int, full_epochs: int, eta: int, finalists: int) -> list[Rung]:
    """The rungs for `count` survivors: sizes count, count/eta, ... down to `finalists`; epochs
    full/eta^k, ..., full (at least 1 each). 15 survivors, 6 epochs, eta 3, 3 finalists: 15 x 1, 5 x 2,
    3 x 6. Rungs that would train the same number of epochs are one rung (the same training twice gives
    the same result): 5 survivors, 2 epochs, eta 2, 1 finalist: 5 x 1, 1 x 2."""
    if count <= finalists:
        return [Rung(0, full_epochs, count)]
    total = 1 + math.ceil(math.log(count / finalists, eta) - 1e-9)
    planned: list[tuple[int, int]] = []  # (epochs, count)
    for index in range(total):
        size = count if index == 0 else max(finalists, math.ceil(count / eta**index))
        size = finalists if index == total - 1 else size
        epochs = max(1, round(full_epochs / eta ** (total - 1 - index)))
        if planned and planned[-1][0] == epochs:
            continue  # the cohort entering this rung is the one the previous rung already trained
        planned.append((epochs, size))
    return [Rung(index, epochs, size) for index, (epochs, size) in enumerate(planned)]


def score(result: dict[str, Any]) -> float | None:
    """The rank of a trained candidate: its validation accuracy (None when it failed)."""
    value = (result.get("student") or {}).get("val_accuracy")
    return None if value is None else float(value)


def ranked(names: list[str], results: dict[str, dict[str, Any]], latency: dict[str, float]) -> list[str]:
    """Trained candidates best first: validation accuracy, then the lower measured latency, then the name."""
    scored = [name for name in names if score(results.get(name, {})) is not None]
    return sorted(scored, key=lambda name: (-score(results[name]), latency.get(name, math.inf), name))


@dataclass
class HalvingResult:
    """Per candidate, what each rung it reached gave ({rung index: summary or {'error': ...}}); the rungs;
    the finalists (best first); and whether the time bound (--hours) cut it short."""

    rungs: list[Rung]
    reached: dict[str, dict[int, dict[str, Any]]]
    finalists: list[str]
    timed_out: bool = False


def run_halving(
    survivors: list[Candidate],
    rungs: list[Rung],
    train: Trainer,
    latency: dict[str, float],
    finalists: int,
    time_left: Callable[[], bool],
    keep: frozenset[str] = frozenset(),
) -> HalvingResult:
    """Train rung by rung; `train` trains a list of (candidate, epochs) and returns {name: summary or
    {'error': why}} for those it trained (it stops early, leaving some out, when time is up). `keep`: names
    that go on to the next rung and the finalists whatever their rank (the recipe's own student), as long as
    they train."""
    by_name = {c.name: c for c in survivors}
    reached: dict[str, dict[int, dict[str, Any]]] = {c.name: {} for c in survivors}
    cohort = [c.name for c in survivors]
    last: list[str] = []
    for rung in rungs:
        if not cohort or not time_left():
            break
        results = train([(by_name[name], rung.epochs) for name in cohort])
        for name, result in results.items():
            reached[name][rung.index] = result
        order = ranked(cohort, results, latency)
        if order:
            last = order
        if len(results) < len(cohort) or not time_left():
            return HalvingResult(rungs, reached, advance(last, finalists, keep), timed_out=True)
        following = rungs[rung.index + 1].count if rung.index + 1 < len(rungs) else finalists
        cohort = advance(order, following, keep)
    return HalvingResult(rungs, reached, advance(last, finalists, keep))


def advance(order: list[str], count: int, keep: frozenset[str]) -> list[str]:
    """The best `count` names of `order` (best first) that are not in `keep`, then those of `keep` that
    trained, whatever their rank: the recipe's own student is what the user would ship without the search,
    so it is always trained to the full schedule and measured beside the search's own finalists, which it
    never displaces (a short schedule ranks a slow starter low: MobileNetV3-L on RetinaMNIST ranked 24th of
    46 after one epoch; after thirty its int8 LiteRT file beat every finalist)."""
    return [name for name in order if name not in keep][:count] + [name for name in order if name in keep]
