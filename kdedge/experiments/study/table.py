"""A study's table, written by the study itself: STUDY/study.json is a result table file
(kdedge.report.results_page: title, headline, the command that regenerates it, machine, columns, rows) that
also keeps every run's numbers and the per-row statistics; STUDY/study.md is its Markdown section. Copied
into bench/results/ (--json), it renders into docs/results.md as it is."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

from kdedge.experiments.study.plan import Plan
from kdedge.experiments.study.results import METRIC_LABELS, format_value, headline
from kdedge.files.atomic import atomic_write_text
from kdedge.report.results_page import section

JSON_NAME, MARKDOWN_NAME = "study.json", "study.md"


def columns(metric: str, rows: list[dict[str, Any]]) -> list[str]:
    """The table's columns; QWK only when some run reports it (ordinal grades) and it is not the metric."""
    label = METRIC_LABELS.get(metric, metric)
    names = ["recipe", "training", "model", "seeds", f"{label} per seed", "mean", "max-min", "vs no KD"]
    if metric != "test_qwk" and any(r["test_qwk_mean"] is not None for r in rows):
        names.append("QWK mean")
    return [*names, "train s (mean)"]


def cells(metric: str, row: dict[str, Any], with_qwk: bool) -> list[Any]:
    """One row's cells, as text where a number needs its own format (the table file keeps JSON values)."""
    per_seed = " / ".join(format_value(metric, v) for v in row["values"]) or "-"
    if row["unfinished"]:
        per_seed += f" ({row['unfinished']} unfinished)"
    versus = format_value(metric, row["vs_baseline"], signed=True) if row["vs_baseline"] is not None else None
    seconds = row["train_seconds_mean"]
    found = [
        row["recipe"],
        _label(row),
        row["model"],
        len(row["seeds"]),
        per_seed,
        format_value(metric, row["mean"]) if row["mean"] is not None else None,
        format_value(metric, row["spread"]) if row["spread"] is not None else None,
        versus,
    ]
    found += [None if row["test_qwk_mean"] is None else round(row["test_qwk_mean"], 3)] if with_qwk else []
    return [*found, None if seconds is None else round(seconds, 1)]


def _label(row: dict[str, Any]) -> str:
    """The row's name; the no-KD row in words (and, for self-KD, that it is the teacher's own run)."""
    if row["kind"] != "baseline" or not row["row"].startswith("no-kd"):
        return row["row"]
    label = "no KD" + row["row"].removeprefix("no-kd").replace(",", ", ", 1)
    return label + (" (= the teacher run)" if row.get("same_run_as_teacher") else "")


def machine_line() -> str:
    """CPU (and GPU) model, cores, torch version and the load average now: what every time needs beside it."""
    import torch

    cpu = platform.processor() or "CPU"
    try:
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    load = os.getloadavg()[0]
    return f"{cpu}, {os.cpu_count()} cores{gpu}, torch {torch.__version__}, load average {load:.1f} at the end"


def table_record(
    plan: Plan, rows: list[dict], records: list[dict], command: str, failed: dict[str, str]
) -> dict[str, Any]:
    """The table file: the results page's keys (kdedge.report.results_page), then the study's own data."""
    spec, metric = plan.spec, plan.spec.metric
    names = columns(metric, rows)
    with_qwk = "QWK mean" in names
    seeds = ", ".join(map(str, spec.seeds))
    notes = [
        f"seeds {seeds}; mean and max-min over the seeds that finished; vs no KD: the mean over seeds of the row "
        "minus its no-KD baseline at the same seed (same teacher, initialisation and batch order)",
        "each seed's teacher is trained once and loaded by every student of that seed (teacher.checkpoint)",
    ]
    notes += [f"{path}: {error}" for path, error in failed.items()]
    recipes = ", ".join(entry.recipe if "/" not in entry.recipe else Path(entry.recipe).name for entry in spec.recipes)
    return {
        "title": spec.title or f"Study: {recipes}, {len(spec.seeds)} seed{'s' if len(spec.seeds) > 1 else ''}",
        "experiment": recipes,
        "order": spec.order,
        "headline": headline(plan, rows),
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "machine": machine_line(),
        "commands": [command],
        "source": f"{plan.out / JSON_NAME} (every run's numbers)",
        "columns": names,
        "rows": [cells(metric, row, with_qwk) for row in rows],
        "notes": notes,
        "study": {"spec": spec.model_dump(mode="json"), "out": str(plan.out)},
        "summary_rows": rows,
        "runs": records,
    }


def write_tables(plan: Plan, record: dict[str, Any], json_copy: Path | None = None) -> list[Path]:
    """STUDY/study.json and study.md (and the table file's copy at `json_copy`); returns the files written."""
    text = json.dumps(record, indent=1) + "\n"
    files = [plan.out / JSON_NAME, plan.out / MARKDOWN_NAME]
    plan.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(files[0], text)
    atomic_write_text(files[1], "\n".join(section(record | {"id": "study"})))
    if json_copy is not None:
        json_copy.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(json_copy, text)
        files.append(json_copy)
    return files
