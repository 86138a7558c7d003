"""Does a moving average of the weights make a better teacher? The raw weights against their average, per epoch.

A stage trained with `ema_decay` logs both in every epoch's record of RUN/metrics.jsonl (test_errors: the
average, which the stage keeps; raw_test_errors: the raw weights), so one run is a paired comparison: the
same initialisation, batches and dropout masks, with and without the average. The raw curve is also what
the same recipe without `ema_decay` trains (the average never feeds back into training).

    python bench/ema_teacher_curves.py RUN [RUN ...] [--stage teacher] [--last 20] [--target N] [--png FILE]
        [--json FILE]

Prints per run the final test errors of both and, over the last --last epochs, the mean, min and max of
each (how much the average calms the epoch-to-epoch swing); writes a PNG of both curves per run, with a
dashed line at --target (e.g. a paper's count) when given.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def stage_records(run: Path, stage: str) -> list[dict]:
    """The stage's epoch records from RUN/metrics.jsonl; exits with one line if they hold no raw scores."""
    lines = (run / "metrics.jsonl").read_text().splitlines()
    records = [r for r in map(json.loads, lines) if r.get("stage") == stage and "epoch" in r]
    if not records or "raw_test_errors" not in records[-1]:
        sys.exit(f"error: {run}/metrics.jsonl: no {stage} epochs with raw_test_errors (train with ema_decay)")
    return records


def summary(records: list[dict], last: int) -> dict:
    """Final errors of the average and of the raw weights, and (mean, min, max) of each over the last epochs."""
    tail = records[-last:]
    row = {"epochs": len(records), "average": records[-1]["test_errors"], "raw": records[-1]["raw_test_errors"]}
    for key, name in (("test_errors", "average"), ("raw_test_errors", "raw")):
        values = [r[key] for r in tail]
        row[f"{name}_last"] = [round(sum(values) / len(values), 1), min(values), max(values)]
    return row


def plot(series: dict[str, list[dict]], path: Path, title: str, target: float | None = None) -> None:
    """Test errors per epoch, raw weights (thin) and their average (thick), one colour per run; the y axis
    starts at the best count and stops at 3x it, where the end of the schedule can be read."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(8, 4.5))
    best = min(min(r["test_errors"], r["raw_test_errors"]) for records in series.values() for r in records)
    for index, (label, records) in enumerate(series.items()):
        colour = f"C{index}"  # matplotlib's colour cycle
        epochs = [r["epoch"] for r in records]
        axis.plot(epochs, [r["raw_test_errors"] for r in records], lw=0.7, alpha=0.6, color=colour)
        axis.plot(epochs, [r["test_errors"] for r in records], lw=2, color=colour, label=f"{label}: average")
    axis.plot([], [], lw=0.7, color="grey", label="thin: raw weights")
    if target is not None:
        axis.axhline(target, ls="--", color="black", lw=1, label=f"target: {target:g}")
        best = min(best, target)
    axis.set_ylim(best - 5, 3 * best)
    axis.set(xlabel="epoch", ylabel="test errors (of 10,000)", title=title)
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--stage", default="teacher")
    parser.add_argument("--last", type=int, default=20, help="epochs at the end to summarise")
    parser.add_argument("--target", type=float, help="a dashed line at this count (e.g. the paper's)")
    parser.add_argument("--png", type=Path, default=Path("ema_teacher_curves.png"))
    parser.add_argument("--json", type=Path, help="also write the per-run summary here")
    args = parser.parse_args()
    series = {run.name: stage_records(run, args.stage) for run in args.runs}
    rows = {name: summary(records, args.last) for name, records in series.items()}
    print(f"{'run':<24} {'epochs':>6} {'average':>8} {'raw':>5}   last {args.last}: average mean/min/max, raw")
    for name, row in rows.items():
        average, raw = (" / ".join(map(str, row[f"{k}_last"])) for k in ("average", "raw"))
        print(f"{name:<24} {row['epochs']:>6} {row['average']:>8} {row['raw']:>5}   {average:<20} {raw}")
    plot(series, args.png, f"{args.stage}: test errors, raw weights and their moving average", args.target)
    if args.json:
        args.json.write_text(json.dumps({"last": args.last, "runs": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
