"""A search's table: one row per candidate with its cost, how far it got and why it stopped, as
SEARCH/search.json (with the settings, the pick and the time split) and SEARCH/search.csv.

Row status: `over budget: ...` (dropped by the cost stage, with the figure), `error: ...` (could not be
written or timed), `failed: ...` (training failed), `stopped early` (halving dropped it), `finalist`,
`finalist, over budget: ...` (its final file missed), `best` (the pick).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kdedge.experiments.search.halving import HalvingResult
from kdedge.experiments.search.space import Candidate
from kdedge.files.atomic import atomic_write_text

COLUMNS = (
    "name",
    "model",
    "image_size",
    "own",
    "params",
    "macs",
    "size_mb",
    "latency_ms_p50",
    "latency_ms_p90",
    "peak_mem_mb",
    "measured_on",
    "stage",
    "epochs",
    "val_accuracy",
    "accuracy",
    "accuracy_from",
    "qwk",
    "status",
    "run",
    "cost_size_mb",
    "cost_latency_ms_p50",
    "cost_latency_ms_p90",
)
STATUS_ORDER = ("best", "finalist", "stopped early", "within budget", "failed", "over budget", "error")


@dataclass
class SearchRecord:
    """What search.json holds besides the rows: settings, rungs, pick, time split, invocations."""

    header: dict[str, Any]
    rows: list[dict[str, Any]] = field(default_factory=list)
    pick: str | None = None
    closest: str | None = None
    time: dict[str, float] = field(default_factory=dict)
    seeds: dict[str, Any] = field(default_factory=dict)  # --seeds: the pick and the recipe's student
    finished: bool = False


def _trained(reached: dict[int, dict[str, Any]]) -> tuple[int | None, dict[str, Any]]:
    """(highest rung index with a result, that result)."""
    if not reached:
        return None, {}
    index = max(reached)
    return index, reached[index]


def candidate_row(
    candidate: Candidate,
    cost: dict[str, Any],
    halving: HalvingResult | None,
    final: dict[str, Any] | None,
    run_of: dict[tuple[str, int], str],
) -> dict[str, Any]:
    """The row of one candidate from its cost record, the rungs it reached and its final measurement."""
    row: dict[str, Any] = {"name": candidate.name, "model": candidate.model, "image_size": candidate.image_size}
    row |= {"own": candidate.own, "params": cost.get("params"), "macs": cost.get("macs")}
    row |= {f"cost_{k}": cost.get(k) for k in ("size_mb", "latency_ms_p50", "latency_ms_p90")}
    row |= {k: cost.get(k) for k in ("size_mb", "latency_ms_p50", "latency_ms_p90", "peak_mem_mb")}
    row["measured_on"] = "random-weights file" if cost.get("latency_ms_p50") is not None else ""
    row["stage"], row["status"] = "cost", _cost_status(cost)
    if row["status"] != "within budget":
        return row
    if halving is None:  # a search stopped before its training stage
        return row
    index, result = _trained(halving.reached.get(candidate.name, {}))
    if index is None:
        return row | {"status": "stopped early (not trained: time bound)"}
    rung = halving.rungs[index]
    student = result.get("student") or {}
    row |= {"stage": f"rung {index + 1}/{len(halving.rungs)}", "epochs": rung.epochs}
    row |= {"run": run_of.get((candidate.name, rung.epochs))}
    if "error" in result:
        return row | {"status": f"failed: {result['error']}"}
    row |= {"val_accuracy": student.get("val_accuracy"), "accuracy": student.get("test_accuracy")}
    row |= {"qwk": student.get("test_qwk"), "accuracy_from": "pytorch", "status": "stopped early"}
    if final is None:
        return row
    row["status"] = "finalist"
    if final["status"] != "ok":
        return row | {"status": f"finalist, {final['status']}"}
    row |= {k: final.get(k) for k in ("size_mb", "latency_ms_p50", "latency_ms_p90", "peak_mem_mb")}
    row |= {"accuracy": final.get("accuracy"), "qwk": final.get("qwk"), "accuracy_from": "exported file"}
    row |= {"stage": "final", "measured_on": "exported file of the trained student"}
    if final["misses"]:
        row["status"] = "finalist, over budget: " + "; ".join(final["misses"])
    return row


def _cost_status(cost: dict[str, Any]) -> str:
    if cost.get("status", "").startswith("error"):
        return cost["status"]
    if cost.get("misses"):
        return "over budget: " + "; ".join(cost["misses"])
    return "within budget"


def build_rows(
    candidates: list[Candidate],
    costs: dict[str, dict[str, Any]],
    halving: HalvingResult | None,
    final: dict[str, dict[str, Any]],
    run_of: dict[tuple[str, int], str],
    pick: str | None,
    graded: bool,
) -> list[dict[str, Any]]:
    """Every candidate's row, best first, the pick's status `best`."""
    rows = []
    for candidate in candidates:
        cost = costs.get(candidate.name, {"status": "not measured yet"})
        row = tidy(candidate_row(candidate, cost, halving, final.get(candidate.name), run_of), graded)
        rows.append(row | ({"status": "best"} if candidate.name == pick else {}))
    return sorted(rows, key=sort_key)


def tidy(row: dict[str, Any], graded: bool) -> dict[str, Any]:
    """Numbers rounded for reading (accuracies to 4 decimals, latencies and sizes to 4 significant digits);
    QWK only on graded data (APTOS, RetinaMNIST), where it means something."""
    for key in ("val_accuracy", "accuracy", "qwk"):
        if row.get(key) is not None:
            row[key] = round(row[key], 4)
    for key in (*(k for k in COLUMNS if k.startswith(("latency", "cost_", "size"))), "peak_mem_mb"):
        if isinstance(row.get(key), float):
            row[key] = float(f"{row[key]:.4g}")
    if not graded:
        row["qwk"] = None
    return row


def sort_key(row: dict[str, Any]) -> tuple:
    """Best first: by status group, then accuracy (higher), then latency (lower)."""
    group = next((i for i, s in enumerate(STATUS_ORDER) if row["status"].startswith(s)), len(STATUS_ORDER))
    accuracy = row.get("accuracy")
    latency = row.get("latency_ms_p50")
    return group, -(accuracy if accuracy is not None else -1), latency if latency is not None else float("inf")


def csv_text(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in COLUMNS})
    return out.getvalue()


def write_record(folder: Path, record: SearchRecord) -> None:
    """SEARCH/search.json and SEARCH/search.csv (each atomically; the CSV holds the rows only)."""
    content = record.header | {
        "rows": record.rows,
        "pick": record.pick,
        "closest": record.closest,
        "time": record.time,
        "seeds": record.seeds,
        "finished": record.finished,
    }
    atomic_write_text(folder / "search.json", json.dumps(content, indent=1, default=str))
    atomic_write_text(folder / "search.csv", csv_text(record.rows))


def read_header(folder: Path) -> dict[str, Any]:
    """The search.json an earlier run of this search left (to check it is the same search and to add up
    time across resumed runs), or {}."""
    file = folder / "search.json"
    try:
        content = json.loads(file.read_text()) if file.is_file() else {}
    except (OSError, ValueError):
        return {}
    return content if isinstance(content, dict) else {}


def time_split(
    folder: Path, costs: dict[str, dict[str, Any]], truth_seconds: float, invocations: list[dict[str, Any]]
) -> dict[str, float]:
    """Where the search's time went, in seconds: cost measurement (this search's own; `cost_saved_s`: what
    the shared cache's records took when they were measured), the teacher, the candidates' trainings (from
    their summaries: every run, also those of earlier, stopped invocations), export + bench of the
    finalists and --seeds runs (the last invocation; seed trainings are in train_s), the wall clock of every
    invocation together, and `other_s`: the wall clock none of those parts times (start-up, loading data,
    building candidates for training, plots)."""
    own = [c for c in costs.values() if c.get("from") != "shared cache"]
    shared = [c for c in costs.values() if c.get("from") == "shared cache"]
    teacher = _summary(folder / "teacher").get("teacher", {}).get("train_seconds", 0.0)
    runs = [*folder.glob("candidates/*/*/summary.json"), *folder.glob("seeds/*/*/summary.json")]
    trained = [_summary(p.parent).get("student", {}) for p in runs]
    split = {
        "cost_s": round(sum(c.get("measure_seconds") or 0 for c in own), 1),
        "cost_saved_s": round(sum(c.get("measure_seconds") or 0 for c in shared), 1),
        "cost_from_shared_cache": len(shared),
        "teacher_s": round(teacher, 1),
        "train_s": round(sum(s.get("train_seconds") or 0 for s in trained), 1),
        "trainings": sum(1 for s in trained if s),
        "export_bench_s": round(truth_seconds, 1),
        "wall_s": round(sum(i.get("wall_s", 0) for i in invocations), 1),
    }
    timed = sum(split[k] for k in ("cost_s", "teacher_s", "train_s", "export_bench_s"))
    split["other_s"] = round(max(0.0, split["wall_s"] - timed), 1)  # start-up, data, plots, the untimed rest
    return split


def _summary(run_dir: Path) -> dict[str, Any]:
    file = run_dir / "summary.json"
    try:
        return json.loads(file.read_text()) if file.is_file() else {}
    except (OSError, ValueError):
        return {}
