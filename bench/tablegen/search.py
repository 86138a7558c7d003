"""`kdedge search` results -> bench/results: one raw file per experiment (several searches: targets x budgets),
then its table. Numbers are read from the searches' search.json, never typed.

    python bench/tables.py collect retina SEARCH_DIR [SEARCH_DIR ...] --title "..." --order 95

`collect` writes bench/results/search_<name>.json (each search's settings, command, machine, pick and
recipe's student at every seed, time split); `tables()` makes search_<name>_table.json of it: per search, the
pick against the recipe's hand-picked student, accuracy over the seeds and the latency measured on the final
file, and where the search's time went.
"""

from __future__ import annotations

import json
import shlex
import statistics
from pathlib import Path

from tablegen.files import RESULTS, Files, ResultFileError

COLUMNS = [
    "target", "budget", "search's pick", "pick acc % (seeds)", "pick ms", "pick MB", "recipe's student",
    "its acc % (seeds)", "its ms", "it fits", "search min", "folder: cost / teacher / students / export / other min",
    "cost cache",
]  # fmt: skip
NOTES = [
    "acc %: test accuracy measured from the exported file, per seed (mean); ms: the final file's "
    "latency at the budget's percentile (median over the seeds); the recipe's student is trained "
    "and measured by the same search (same teacher, schedule and seeds), also when it misses the budget",
    "search min: this budget's invocation alone; folder: cost / teacher / students / export / other: every "
    "invocation in the search folder so far (a second budget or target in the same folder reuses the "
    "trainings and cost measurements of the first)",
]


def _role(record: dict, role: str) -> dict:
    """The pick's or the recipe's own student's measurements: per seed when --seeds gave them, else its row."""
    rows = {row["name"]: row for row in record["rows"]}
    seeds = (record.get("seeds") or {}).get(role)
    name = (
        seeds["name"]
        if seeds
        else (record["pick"] if role == "pick" else next(r["name"] for r in record["rows"] if r["own"]))
    )
    if role == "own" and not seeds and record["pick"] == name:
        seeds = (record.get("seeds") or {}).get("pick")
    row = rows.get(name, {})
    runs = seeds["runs"] if seeds else [{"accuracy": row.get("accuracy"), "qwk": row.get("qwk")} | row]
    return {"name": name, "row": row, "runs": runs}


def summarise(folder: Path) -> dict:
    """What the table needs from one search folder."""
    if not (folder / "search.json").is_file():
        raise ResultFileError(f"{folder}: no search.json there (not a `kdedge search` folder)")
    record = json.loads((folder / "search.json").read_text())
    argv = record.get("argv", [])
    command = shlex.join(["kdedge", *argv[1:]]) if argv else ""
    return {
        "folder": str(folder),
        "command": command,
        "recipe": record["recipe"],
        "target": record["target"],
        "budget": record["budget"],
        "threads": record["threads"],
        "batch": record["batch"],
        "machine": record["machine"],
        "invocations": record.get("invocations", []),
        "time": record["time"],
        "pick": _role(record, "pick") if record.get("pick") else None,
        "own": _role(record, "own"),
        "candidates": len(record["rows"]),
        "statuses": {
            s: sum(1 for r in record["rows"] if r["status"].startswith(s))
            for s in ("over budget", "stopped early", "finalist", "best", "error", "failed")
        },
        "date": (record.get("invocations") or [{}])[-1].get("started", "")[:10],
    }


def collect(name: str, folders: list[Path], title: str, order: int, notes: list[str], results: Path = RESULTS) -> Path:
    """bench/results/search_<name>.json from the search folders (one table row each, in this order)."""
    out = results / f"search_{name}.json"
    content = {"experiment": "kdedge search", "title": title, "order": order, "notes": notes}
    content["searches"] = [summarise(folder) for folder in folders]
    out.write_text(json.dumps(content, indent=1) + "\n")
    return out


def _accuracies(role: dict | None) -> tuple[str, float | None]:
    """'51.2 / 49.8 (50.5)' over the seeds measured; the mean."""
    values = [r["accuracy"] for r in (role or {}).get("runs", []) if r.get("accuracy") is not None]
    if not values:
        return "not trained", None
    mean = statistics.fmean(values)
    text = " / ".join(f"{100 * v:.1f}" for v in values)
    return (f"{text} ({100 * mean:.1f})" if len(values) > 1 else text), mean


def _latency(role: dict | None, key: str) -> float | None:
    runs = [r.get(key) for r in (role or {}).get("runs", []) if r.get(key) is not None]
    return round(statistics.median(runs), 4) if runs else (role or {}).get("row", {}).get(key)


def _budget(budget: dict) -> str:
    words = f"{budget['percentile']} <= {budget['latency_ms']:g} ms"
    return words + (f", <= {budget['size_mb']:g} MB" if budget.get("size_mb") else "")


def table_row(search: dict) -> list:
    key = f"latency_ms_{search['budget']['percentile']}"
    pick, own, time = search["pick"], search["own"], search["time"]
    pick_text, _ = _accuracies(pick)
    own_text, _ = _accuracies(own)
    own_status = own["row"].get("status", "")
    fits = "yes" if not own_status.startswith(("over budget", "finalist, over budget")) else "no"
    minutes = lambda seconds: f"{seconds / 60:.1f}"  # noqa: E731
    return [
        search["target"],
        _budget(search["budget"]),
        pick["name"] if pick else "none fits",
        pick_text,
        _latency(pick, key),
        pick["row"].get("size_mb") if pick else None,
        own["name"],
        own_text,
        _latency(own, key) or own["row"].get(f"cost_{key}"),
        fits,
        minutes(search["invocations"][-1]["wall_s"]) if search["invocations"] else minutes(time["wall_s"]),
        " / ".join(minutes(time.get(k, 0)) for k in ("cost_s", "teacher_s", "train_s", "export_bench_s", "other_s")),
        f"{time['cost_from_shared_cache']} cached ({minutes(time['cost_saved_s'])} min saved)",
    ]


def machine_line(searches: list[dict]) -> str:
    """The machine, threads and batch of the first search, and the load average around the searches."""
    first = searches[0]
    last = [s["invocations"][-1] for s in searches if s["invocations"]]  # a folder's snapshot has them all
    load = [i.get("load_avg_1m") for i in last if i.get("load_avg_1m") is not None]
    cpu = first["machine"]
    machine = f"{cpu['cpu']}, {cpu['cores']} cores, {first['threads']} thread(s), batch {first['batch']}"
    machine += f"; load average {first['machine'].get('load_avg_1m_at_start')} at the start of the first search"
    return machine + (f", {' / '.join(map(str, load))} at the end of each run" if load else "")


def headline(searches: list[dict]) -> str:
    """Per search that found a pick: its accuracy against the recipe's own student."""
    best = [(s, _accuracies(s["pick"])[1], _accuracies(s["own"])[1]) for s in searches if s["pick"]]
    text = "; ".join(
        f"{s['target']} {_budget(s['budget'])}: {s['pick']['name']} {100 * p:.1f} % vs the recipe's {100 * o:.1f} %"
        for s, p, o in best
        if p is not None and o is not None
    )
    return text or "no search found a student within its budget"


def search_table(name: str, raw: dict) -> dict:
    """search_<name>.json -> its table: per search, the pick against the recipe's hand-picked student."""
    searches = raw["searches"]
    return {
        "title": raw["title"],
        "experiment": raw["experiment"],
        "order": raw["order"],
        "headline": headline(searches),
        "date": max(s["date"] for s in searches),
        "machine": machine_line(searches),
        "commands": [s["command"] for s in searches],
        "source": f"bench/results/{name}",
        "columns": COLUMNS,
        "rows": [table_row(search) for search in searches],
        "notes": raw.get("notes", []) + NOTES,
    }


def tables(files: Files) -> dict[str, dict]:
    """search_<name>_table.json for each collected search_<name>.json."""
    return {
        name.removesuffix(".json") + "_table.json": search_table(name, raw)
        for name, raw in sorted(files.items())
        if name.startswith("search_") and not name.endswith("_table.json")
    }
