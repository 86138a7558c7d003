"""The RetinaMNIST results table from the runs of bench/retinamnist_runs.sh: test accuracy and
QWK on the 400 official test images (mean of the seeds and their spread), KD vs no KD, parameters, and
onnxruntime fp32 / int8 latency at batch 1 (from `kdedge bench RUN --json RUN/bench.json`), beside the
MedMNIST v2 reference. Writes JSON and prints a Markdown table; reads only finished runs' files.

    python bench/retinamnist_results.py runs/retina --json bench/results/retinamnist.json

Other row sets (an attempt's runs named PREFIX-s<seed>): `--row "MobileNetV3-L, KD (60 ep)=m60-kd"` (repeatable;
`=PREFIX:teacher` for a teacher run). Every "X, KD..." row is set beside the "X, no KD..." row with the same
trailing [tag] ("MobileNetV3-L, KD DKD [no aug]" beside "MobileNetV3-L, no KD [no aug]"). Runs with
`keep: best_val` also give their last epoch's test accuracy (metrics.jsonl), in per_seed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

REFERENCE = {
    "accuracy": 0.531,
    "source": "MedMNIST v2 (Yang et al. 2023), best baseline on RetinaMNIST "
    "28 px (Google AutoML Vision); its ResNet-18/50 reach 0.493-0.528",
}
TARGET_PARAMS = 5_000_000
# table rows: (label, run-name prefix, stage whose numbers the row shows)
ROWS = (
    ("ConvNeXt-T teacher", "teacher", "teacher"),
    ("Swin-T, KD", "swin-kd", "student"),
    ("Swin-T, no KD", "swin-nokd", "student"),
    ("MobileNetV3-L, KD", "mobile-kd", "student"),
    ("MobileNetV3-L, no KD", "mobile-nokd", "student"),
    ("ConvNeXt-T self-KD", "self-kd", "student"),
)


def bench_row(run: Path, stage: str, precision: str) -> dict:
    """RUN/bench.json's onnxruntime batch-1 row of RUN/export/<stage>.<precision>.onnx ({} without one)."""
    file = run / "bench.json"
    if not file.is_file():
        return {}
    rows = json.loads(file.read_text()).get("rows", [])
    hits = [
        r
        for r in rows
        if r.get("runtime") == "onnxruntime"
        and r.get("stage") == stage
        and r.get("precision") == precision
        and r.get("batch_size") == 1
        and r.get("latency_ms_p50")
    ]
    return hits[0] if hits else {}


def latency(run: Path, stage: str, precision: str) -> float | None:
    """onnxruntime p50 latency (ms) at batch 1 of RUN/export/<stage>.<precision>.onnx, from RUN/bench.json."""
    return bench_row(run, stage, precision).get("latency_ms_p50")


def mean_spread(values: list[float]) -> tuple[float | None, float | None]:
    """(mean, max - min) of the seeds' values; (None, None) without any."""
    if not values:
        return None, None
    return statistics.fmean(values), max(values) - min(values)


def parse_row(text: str) -> tuple[str, str, str]:
    """'LABEL=PREFIX[:STAGE]' -> (label, prefix, stage); the stage defaults to student."""
    label, _, target = text.rpartition("=")
    prefix, _, stage = target.partition(":")
    if not label or not prefix:
        raise SystemExit(f"error: --row {text!r}: expected LABEL=PREFIX[:STAGE]")
    return label, prefix, stage or "student"


def last_epoch_accuracy(run: Path, stage: str) -> float | None:
    """The test accuracy of the stage's last epoch (metrics.jsonl): what keep: last would have reported."""
    file = run / "metrics.jsonl"
    if not file.is_file():
        return None
    records = [json.loads(line) for line in file.read_text().splitlines() if line.strip()]
    records = [r for r in records if r.get("stage") == stage and "test_accuracy" in r]
    return records[-1]["test_accuracy"] if records else None


def collect(root: Path, rows: tuple[tuple[str, str, str], ...] = ROWS) -> list[dict]:
    """One dict per table row: per-seed numbers and their mean / spread."""
    table = []
    for label, prefix, stage in rows:
        runs = sorted(
            p
            for p in root.glob(f"{prefix}-s*")
            if (p / "summary.json").is_file() and json.loads((p / "summary.json").read_text()).get("finished")
        )
        seeds = []
        for run in runs:
            summary = json.loads((run / "summary.json").read_text())
            part = summary[stage]
            seeds.append(
                {
                    "run": str(run),
                    "seed": int(run.name.rsplit("-s", 1)[1]),
                    "model": part["model"],
                    "params": part["params"],
                    "test_accuracy": part["test_accuracy"],
                    "test_qwk": part["test_qwk"],
                    "epochs": part.get("epochs"),
                    "kept_epoch": part.get("kept_epoch"),
                    "last_epoch_test_accuracy": last_epoch_accuracy(run, stage),
                    "train_seconds": part.get("train_seconds"),
                    "ort_fp32_ms_b1": latency(run, stage, "fp32"),
                    "ort_int8_ms_b1": latency(run, stage, "int8"),
                    "ort_int8_accuracy": bench_row(run, stage, "int8").get("accuracy"),
                }
            )
        if not seeds:
            continue
        acc, acc_spread = mean_spread([s["test_accuracy"] for s in seeds])
        qwk, qwk_spread = mean_spread([s["test_qwk"] for s in seeds])
        fp32 = [s["ort_fp32_ms_b1"] for s in seeds if s["ort_fp32_ms_b1"]]
        int8 = [s["ort_int8_ms_b1"] for s in seeds if s["ort_int8_ms_b1"]]
        table.append(
            {
                "row": label,
                "model": seeds[0]["model"],
                "params": seeds[0]["params"],
                "seeds": len(seeds),
                "test_accuracy_mean": acc,
                "test_accuracy_spread": acc_spread,
                "test_qwk_mean": qwk,
                "test_qwk_spread": qwk_spread,
                "ort_fp32_ms_b1": statistics.fmean(fp32) if fp32 else None,
                "ort_int8_ms_b1": statistics.fmean(int8) if int8 else None,
                "per_seed": seeds,
            }
        )
    return table


def verdicts(table: list[dict]) -> dict:
    """The issue's targets, answered with the numbers: a <= 5 M distilled student at >= 0.531 (seed mean),
    and KD vs no KD (difference of the seed means) for each student."""
    by_row = {row["row"]: row for row in table}
    out = {}
    for label, kd in by_row.items():  # "X, KD<what> [tag]" beside "X, no KD [tag]" (same trailing [tag])
        student, sep, rest = label.partition(", KD")
        tag = rest[rest.rfind(" [") :] if rest.endswith("]") else ""
        plain = by_row.get(f"{student}, no KD{tag}")
        if sep and plain:
            name = student + rest
            out[f"{name}: KD - no KD, accuracy"] = kd["test_accuracy_mean"] - plain["test_accuracy_mean"]
            out[f"{name}: KD - no KD, QWK"] = kd["test_qwk_mean"] - plain["test_qwk_mean"]
    self_kd, teacher = by_row.get("ConvNeXt-T self-KD"), by_row.get("ConvNeXt-T teacher")
    if self_kd and teacher:  # self-KD's baseline is its own teacher: same model, seed and schedule, no KD
        out["ConvNeXt-T: self-KD - teacher, accuracy"] = self_kd["test_accuracy_mean"] - teacher["test_accuracy_mean"]
        out["ConvNeXt-T: self-KD - teacher, QWK"] = self_kd["test_qwk_mean"] - teacher["test_qwk_mean"]
    small = [r for r in table if r["params"] <= TARGET_PARAMS and ", KD" in r["row"]]
    out["distilled student <= 5 M params reaches 0.531"] = any(
        r["test_accuracy_mean"] >= REFERENCE["accuracy"] and r["seeds"] >= 2 for r in small
    )
    return out


def markdown(table: list[dict]) -> str:
    def num(value: float | None, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    lines = [
        "| model | params | seeds | test acc (mean ± half-range) | QWK (mean ± half-range) | "
        "ORT fp32 ms (b1) | ORT int8 ms (b1) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in table:
        lines.append(
            f"| {r['row']} | {r['params'] / 1e6:.1f} M | {r['seeds']} | "
            f"{r['test_accuracy_mean']:.3f} ± {r['test_accuracy_spread'] / 2:.3f} | "
            f"{r['test_qwk_mean']:.3f} ± {r['test_qwk_spread'] / 2:.3f} | "
            f"{num(r['ort_fp32_ms_b1'], '.2f')} | {num(r['ort_int8_ms_b1'], '.2f')} |"
        )
    lines.append(f"| MedMNIST v2 best baseline (reference) | | | {REFERENCE['accuracy']:.3f} | | | |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="folder of the runs (runs/retina)")
    parser.add_argument("--json", type=Path, help="write the table, verdicts and reference here")
    parser.add_argument("--meta", type=str, default="{}", help="JSON of machine/date/commands to store")
    parser.add_argument("--row", action="append", default=[], help="LABEL=PREFIX[:STAGE] (default: the 6 rows)")
    args = parser.parse_args()
    table = collect(args.root, tuple(parse_row(r) for r in args.row) or ROWS)
    if not table:
        print(f"error: no finished runs under {args.root}", file=sys.stderr)
        return 2
    print(markdown(table))
    result = {"reference": REFERENCE, "rows": table, "verdicts": verdicts(table), **json.loads(args.meta)}
    for key, value in result["verdicts"].items():
        print(f"- {key}: {value:+.4f}" if isinstance(value, float) else f"- {key}: {value}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
