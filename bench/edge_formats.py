"""Edge formats: one run's student in every export format, side by side with ONNX Runtime in the same run.

    python bench/edge_formats.py RUN [--name mnist800] [--limit N] [--threads 2] [--min-agreement 0]
        [--formats onnx,litert,ncnn,mnn]

Exports RUN (--force) to onnx, executorch, litert, coreml, ncnn and mnn (or --formats) at fp32 / fp16 / int8
(what each format writes), benches every file at batch 1 (each row in its own process), and joins the two: per format
and precision the file size, batch-1 latency p50, accuracy on the run's test set (measured by bench on the
file), and the export's parity max |file - torch| (random inputs; fp32 is the one that matters, int8
files see inputs outside their calibration range there) and top-1 agreement with PyTorch fp32 on the real
test images. --min-agreement defaults to 0 here (export's own default is 0.97, all or nothing): every
file is written and the table shows what a reduced precision costs, instead of one failed int8 file
stopping the comparison. Writes bench/results/edge_formats_<name>.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

from kdedge.bench.run import BenchOptions, run_bench
from kdedge.export.options import check_request
from kdedge.export.runner import export_run

FORMATS = "onnx,executorch,litert,coreml,ncnn,mnn"
RESULTS = Path(__file__).resolve().parent / "results"


def _export(run: Path, limit: int | None, min_agreement: float, formats: str) -> list[dict]:
    started = time.perf_counter()
    overrides = {"limit": limit, "min_top1_agreement": min_agreement}
    rows = export_run(check_request(run, "student", "fp32,fp16,int8", formats, "1", overrides), quiet=True, force=True)
    print(f"export: {time.perf_counter() - started:.0f} s")
    return [
        {
            "file": Path(r.path).name if r.path else None,
            "format": r.fmt,
            "precision": r.precision,
            "status": r.status,
            "size_mb": r.size_mb,
            "max_abs_diff_torch": r.max_abs_diff,
            "test_agreement": r.test_agreement,
            "export_test_accuracy": r.test_accuracy,
            "export_seconds": round(r.seconds, 1),
        }
        for r in rows
    ]


def _bench(run: Path, threads: int, limit: int | None) -> list[dict]:
    options = BenchOptions(batch_sizes=(1,), threads=threads, seconds=3.0, limit=limit)
    result = run_bench([run], options)
    return result["rows"]


def joined(exported: list[dict], benched: list[dict]) -> list[dict]:
    """One line per bench row of a file (plus PyTorch), with the export's parity and status."""
    by_file = {e["file"]: e for e in exported if e["file"]}
    lines = []
    for row in benched:
        name = Path(row["file"]).name if row.get("file") else None
        export = by_file.get(name, {})
        lines.append(
            {
                "runtime": row["runtime"],
                "precision": row["precision"],
                "file": name,
                "size_mb": row.get("size_mb"),
                "latency_ms_p50": row.get("latency_ms_p50"),
                "accuracy": row.get("accuracy"),
                "test_count": row.get("test_count"),
                "max_abs_diff_torch": export.get("max_abs_diff_torch"),
                "test_agreement": export.get("test_agreement"),
                "status": row["status"],
            }
        )
    for e in exported:  # files that were not written (failed, or a precision the format lacks)
        if e["status"] != "ok":
            lines.append({"runtime": e["format"], "precision": e["precision"], "file": None, "status": e["status"]})
    return lines


def markdown(lines: list[dict]) -> str:
    """The joined lines as a Markdown table."""
    head = [
        "| runtime | prec | file | MB | p50 ms (b1) | acc % | max abs diff vs torch | status |",
        "|---|---|---|---:|---:|---:|---:|---|",
    ]

    def cell(value, spec: str, scale: float = 1.0) -> str:
        return "-" if value is None else format(value * scale, spec)

    body = [
        f"| {x['runtime']} | {x['precision']} | {x.get('file') or '-'} | {cell(x.get('size_mb'), '.2f')} | "
        f"{cell(x.get('latency_ms_p50'), '.3f')} | {cell(x.get('accuracy'), '.2f', 100)} | "
        f"{cell(x.get('max_abs_diff_torch'), '.1e')} | {x['status']} |"
        for x in lines
    ]
    return "\n".join([*head, *body])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--name", default="mnist800")
    parser.add_argument("--limit", type=int, default=None, help="test images (default: the run's test set)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--min-agreement", type=float, default=0.0, help="export's fp16/int8 bound (its own: 0.97)")
    parser.add_argument("--formats", default=FORMATS, help=f"export formats (default {FORMATS})")
    args = parser.parse_args()
    exported = _export(args.run, args.limit, args.min_agreement, args.formats)
    lines = joined(exported, _bench(args.run, args.threads, args.limit))
    record = {
        "command": f"python bench/edge_formats.py {args.run} --name {args.name} --threads {args.threads} "
        f"--min-agreement {args.min_agreement:g}"
        + (f" --limit {args.limit}" if args.limit else "")
        + (f" --formats {args.formats}" if args.formats != FORMATS else ""),
        "date": time.strftime("%Y-%m-%d"),
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "load_average": os.getloadavg(),
        },
        "export": exported,
        "rows": lines,
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"edge_formats_{args.name}.json"
    out.write_text(json.dumps(record, indent=2, default=str) + "\n")
    print(markdown(lines))
    print(f"\n{out}")


if __name__ == "__main__":
    main()
