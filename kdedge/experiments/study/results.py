"""A study's results, read from its run folders: one record per run, one row per recipe x row (the seeds'
values, mean, spread, and the difference to the no-KD baseline at the same seeds), and the teacher of each
recipe. Unfinished runs are left out of the means and counted, so a study in progress tabulates too."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from kdedge.data import is_ordinal
from kdedge.experiments.study.plan import Cell, Plan
from kdedge.files.rundir import RunDir

SCALE = {"test_accuracy": 100.0, "val_accuracy": 100.0}  # fractions shown in percent
DIGITS = {"test_accuracy": 2, "val_accuracy": 2, "test_errors": 1, "test_qwk": 3}


def higher_is_better(metric: str) -> bool:
    return not metric.endswith("errors")


def scaled(metric: str, value: float | None) -> float | None:
    """A metric as the table shows it: accuracies in percent, errors as counts, QWK as is."""
    return None if value is None else value * SCALE.get(metric, 1.0)


def run_record(cell: Cell, metric: str) -> dict[str, Any]:
    """What one run contributes: its student's (the bias-fixed one's, after a fix) and its teacher's numbers."""
    summary = RunDir(cell.path).read_summary()
    record = {"recipe": cell.entry, "row": cell.row, "seed": cell.seed, "run": str(cell.path)}
    if not summary.get("finished"):
        return record | {"finished": False}
    if cell.stage == "teacher":  # a baseline that is its teacher's run: the teacher trained alone
        student, teacher = summary.get("teacher") or {}, {}
        record["same_run_as_teacher"] = True
    else:
        student = summary.get("student_bias_fixed") or summary.get("student") or {}
        teacher = _teacher_entry(cell) or summary.get("teacher") or {}
    keys = ("model", "params", "test_accuracy", "test_errors", "val_accuracy", "epochs", "train_seconds")
    if is_ordinal(summary.get("data", {}).get("dataset", "")):  # QWK means something for ordered grades only
        keys += ("test_qwk",)
    record |= {"finished": True, **{key: student.get(key) for key in keys if key in student}}
    record["value"] = scaled(metric, student.get(metric))
    if teacher:
        record["teacher"] = {key: teacher.get(key) for key in keys if key in teacher}
    return record


def _teacher_entry(cell: Cell) -> dict[str, Any] | None:
    """The teacher as the run that trained it reports it (its training time included), when the cell loads
    a teacher run folder; None otherwise (the student run's own entry then says what was loaded)."""
    checkpoint = cell.recipe.teacher.checkpoint if cell.recipe.teacher else None
    if not checkpoint or not Path(checkpoint).is_dir():
        return None
    summary = RunDir(Path(checkpoint)).read_summary()
    return summary.get("teacher") if summary.get("finished") else None


def _spread(values: list[float]) -> dict[str, float | None]:
    """mean, max - min and the sample standard deviation (None below two values)."""
    if not values:
        return {"mean": None, "spread": None, "std": None}
    several = len(values) > 1
    return {
        "mean": statistics.fmean(values),
        "spread": max(values) - min(values) if several else None,
        "std": statistics.stdev(values) if several else None,
    }


def study_rows(plan: Plan, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per recipe: its teacher row (when a student run reports one), then a row per study row in plan order,
    each with the seeds' values, their mean and spread and, beside a KD row, its no-KD baseline's."""
    rows: list[dict[str, Any]] = []
    metric = plan.spec.metric
    for entry in plan.spec.entry_names():
        mine = [r for r in records if r["recipe"] == entry]
        teacher = _teacher_row(entry, mine, metric)
        rows += [teacher] if teacher else []
        names = list(dict.fromkeys(cell.row for cell in plan.cells if cell.entry == entry))
        baselines = {cell.row: cell.baseline for cell in plan.cells if cell.entry == entry}
        by_row = {name: [r for r in mine if r["row"] == name] for name in names}
        for name in names:
            kind = "baseline" if any(cell.baseline == name for cell in plan.cells if cell.entry == entry) else "student"
            rows.append(_row(entry, name, kind, by_row[name], by_row.get(baselines[name] or ""), baselines[name]))
    return rows


def _row(
    entry: str, name: str, kind: str, runs: list[dict], base_runs: list[dict] | None, baseline: str | None
) -> dict[str, Any]:
    done = [r for r in runs if r.get("finished") and r.get("value") is not None]
    values = [r["value"] for r in done]
    row = {"recipe": entry, "row": name, "kind": kind, "baseline": baseline}
    row |= {"model": done[0].get("model") if done else None, "params": done[0].get("params") if done else None}
    row |= {"seeds": [r["seed"] for r in done], "values": values, **_spread(values)}
    row["unfinished"] = len(runs) - len(done)
    row["same_run_as_teacher"] = any(r.get("same_run_as_teacher") for r in runs)
    row["test_qwk_mean"] = _mean([r.get("test_qwk") for r in done])
    row["train_seconds_mean"] = _mean([r.get("train_seconds") for r in done])
    row |= _versus(done, base_runs or [])
    return row


def _versus(done: list[dict], base_runs: list[dict]) -> dict[str, Any]:
    """The row minus its baseline, seed by seed (same seed: same teacher, initialisation and batch order),
    over the seeds both finished."""
    base = {r["seed"]: r["value"] for r in base_runs if r.get("finished") and r.get("value") is not None}
    paired = [r["value"] - base[r["seed"]] for r in done if r["seed"] in base]
    if not paired:
        return {"baseline_mean": None, "vs_baseline": None, "vs_baseline_per_seed": []}
    base_mean = statistics.fmean(base[r["seed"]] for r in done if r["seed"] in base)
    return {"baseline_mean": base_mean, "vs_baseline": statistics.fmean(paired), "vs_baseline_per_seed": paired}


def _teacher_row(entry: str, records: list[dict], metric: str) -> dict[str, Any] | None:
    """The recipe's teacher, per seed, as its students' runs report it (one per seed)."""
    per_seed: dict[int, dict] = {}
    for record in records:
        if record.get("teacher") and record.get("finished"):
            per_seed.setdefault(record["seed"], record["teacher"])
    if not per_seed:
        return None
    done = [
        {"seed": seed, "value": scaled(metric, entry.get(metric)), "finished": True, **entry}
        for seed, entry in per_seed.items()
    ]
    done = [r for r in done if r["value"] is not None]
    row = _row(entry, "teacher", "teacher", done, None, None)
    row["unfinished"] = 0
    return row


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.fmean(present) if present else None


def headline(plan: Plan, rows: list[dict[str, Any]]) -> str:
    """Per recipe, its best KD row against its no-KD baseline (means over the seeds)."""
    metric, parts = plan.spec.metric, []
    sign = 1 if higher_is_better(metric) else -1
    for entry in plan.spec.entry_names():
        students = [r for r in rows if r["recipe"] == entry and r["kind"] == "student" and r["mean"] is not None]
        if not students:
            continue
        best = max(students, key=lambda r: sign * r["mean"])
        text = f"{entry}: {best['row']} {format_value(metric, best['mean'])}"
        if best["baseline_mean"] is not None:
            text += f" vs no KD {format_value(metric, best['baseline_mean'])}"
        parts.append(text + f" ({len(best['seeds'])} seed{'s' if len(best['seeds']) != 1 else ''})")
    label = METRIC_LABELS.get(metric, metric)
    return f"{label}, mean over seeds: " + "; ".join(parts) if parts else "no finished runs yet"


METRIC_LABELS = {
    "test_accuracy": "test accuracy %",
    "val_accuracy": "val accuracy %",
    "test_errors": "test errors",
    "test_qwk": "test QWK",
}


def format_value(metric: str, value: float | None, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.{DIGITS.get(metric, 3)}f}" if signed else f"{value:.{DIGITS.get(metric, 3)}f}"
