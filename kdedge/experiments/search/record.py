"""What search.json says besides the rows: the settings and machine (the header), the check that a folder
holds this very search before it is continued, and the one line for a budget nothing meets."""

from __future__ import annotations

import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from kdedge.errors import InputError
from kdedge.experiments.search.cost_cache import machine_identity, runtime_version
from kdedge.experiments.search.options import SearchSetup
from kdedge.experiments.search.results import read_header
from kdedge.experiments.search.target import Budget


def make_header(setup: SearchSetup, bundle, val_size: int | None) -> dict[str, Any]:
    """The search's settings, data and machine, as search.json starts."""
    options = setup.options
    return {
        "recipe": setup.recipe.name,
        "recipe_source": options.recipe,
        "overrides": list(options.overrides),
        "recipe_fingerprint": setup.recipe.fingerprint(),
        "target": setup.target.name,
        "runtime": f"{setup.target.runtime} {runtime_version(setup.target.runtime)}",
        "budget": asdict(setup.budget),
        "threads": options.threads,
        "batch": options.batch,
        "seconds": options.seconds,
        "seeds": options.seeds,
        "backend": "ray" if options.ray else "local",
        "hours": options.hours,
        "space": {"name": setup.space.name, "sha": setup.space_sha, "file": str(options.space or "(packaged)")},
        "halving": setup.space.halving.model_dump(),
        "val_size": val_size,
        "data": {"dataset": bundle.name, "image_size": bundle.image_size, "classes": bundle.num_classes},
        "machine": machine_identity(options.threads) | {"load_avg_1m_at_start": round(os.getloadavg()[0], 2)},
        "argv": sys.argv,
    }


def earlier_invocations(folder: Path, header: dict[str, Any]) -> list[dict[str, Any]]:
    """The invocations of this search that ran before (stopped, then rerun); a folder holding a search of
    another recipe (or other --set values) is refused: its runs would mix with this one's."""
    previous = read_header(folder)
    theirs = previous.get("recipe_fingerprint")
    if theirs and theirs != header["recipe_fingerprint"]:
        raise InputError(
            f"--out {folder} holds a search of another recipe ({previous.get('recipe')} with "
            f"{previous.get('overrides') or 'no'} --set values); give another --out"
        )
    return list(previous.get("invocations", []))


def impossible_message(costs: dict[str, dict[str, Any]], budget: Budget, target: str, folder: Path) -> str:
    """No candidate survived the cost stage: the budget, the closest candidate, where the figures are."""
    measured = [(name, c) for name, c in costs.items() if c["status"] == "ok"]
    closest = min(measured, key=lambda item: budget.overshoot(item[1]), default=None)
    near = ""
    if closest is not None:
        name, cost = closest
        near = f"; closest: {name} at {cost[budget.latency_key]:.3g} ms, {cost['size_mb']:.3g} MB"
    return (
        f"no candidate of the space meets {budget.describe()} on {target} here{near} "
        f"(every figure in {folder / 'search.csv'}); raise the budget or give --space smaller models"
    )
