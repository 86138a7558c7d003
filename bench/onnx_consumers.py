"""The compatibility matrix: every ONNX file of some runs' students (fp32 / fp16 / int8, as `kdedge export`
wrote them) through every ONNX consumer (`kdedge check`: onnxruntime, OpenVINO, OpenCV DNN, tract).

    python bench/onnx_consumers.py NAME=RUN [NAME=RUN ...] [--limit 256]

One row per (student, precision, runtime): agrees / DIFFERS / refused with the runtime's own line, top-1
agreement with onnxruntime on the run's real test images and max |logits - onnxruntime's|. Writes
bench/results/onnx_consumers_table.json (the results table format; `python bench/tables.py` renders it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

from kdedge.export.compat import check_consumers, test_images

RESULTS = Path(__file__).resolve().parent / "results"


def rows_of(name: str, run: Path, limit: int) -> list[list]:
    """The matrix rows of one run's student files."""
    rows = []
    for precision in ("fp32", "fp16", "int8"):
        path = run / "export" / f"student.{precision}.onnx"
        if not path.is_file():
            continue
        images, _ = test_images(path, None, None, limit)
        for row in check_consumers(path, images):
            agreement = None if row.agreement is None else round(100 * row.agreement, 1)
            diff = None if row.max_abs_diff is None else f"{row.max_abs_diff:.1e}"
            rows.append([name, precision, f"{row.runtime} {row.version}", row.status, agreement, diff, row.note])
            print(" | ".join(map(str, rows[-1])), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="NAME=RUN: a label and a run folder with export/student.*.onnx")
    parser.add_argument("--limit", type=int, default=256)
    args = parser.parse_args()
    rows = []
    for item in args.runs:
        name, run = item.split("=", 1)
        rows += rows_of(name, Path(run), args.limit)
    refused = sorted({r[2].split()[0] + " " + r[1] for r in rows if r[3] == "refused"})
    differs = sorted({r[2].split()[0] + " " + r[1] for r in rows if r[3] == "DIFFERS"})
    table = {
        "title": "Which runtimes run kdedge's ONNX files (the compatibility matrix)",
        "experiment": "kdedge check (bench/onnx_consumers.py)",
        "order": 86,
        "headline": f"refused: {', '.join(refused) or 'none'}; computes differently: {', '.join(differs) or 'none'}",
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, one thread per runtime",
        "commands": ["taskset -c 1 env OMP_NUM_THREADS=1 python bench/onnx_consumers.py " + " ".join(args.runs)],
        "source": "bench/onnx_consumers.py (this table is its output)",
        "columns": ["student", "precision", "runtime", "status", "top-1 agreement %", "max abs diff", "error line"],
        "rows": rows,
        "notes": [
            "reference: onnxruntime on the same file (kdedge's export checked it against PyTorch); agrees = top-1 "
            "agreement >= 97 % on the run's first test images",
            "int8 = onnxruntime's static QDQ file (u8s8, per-channel); OpenCV DNN runs int8 only as QOperator, "
            "which is a different file (docs/formats.md, ONNX consumers)",
        ],
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "onnx_consumers_table.json").write_text(json.dumps(table, indent=2) + "\n")


if __name__ == "__main__":
    main()
