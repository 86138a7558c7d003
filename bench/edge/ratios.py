"""Ratios from `kdedge bench --json` files, all measured in one bench run each (`kdedge bench`, 2026-11-25).

For every model and batch size: speed-up of each runtime/precision over onnxruntime fp32 (p50 latency),
and its accuracy change in points; then each student's best row vs its teacher's onnxruntime fp32 row.

    .venv/bin/python bench/edge/ratios.py bench/edge/results/*.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def ratios(path: Path) -> list[str]:
    rows = [r for r in json.loads(path.read_text())["rows"] if r["status"] == "ok"]
    lines = [f"## {path.name}"]
    for model in dict.fromkeys(r["model"] for r in rows):
        for batch in sorted({r["batch_size"] for r in rows if r["model"] == model}):
            mine = [r for r in rows if (r["model"], r["batch_size"]) == (model, batch)]
            base = next((r for r in mine if (r["runtime"], r["precision"]) == ("onnxruntime", "fp32")), None)
            if base is None:
                continue
            parts = []
            for row in mine:
                acc = (
                    ""
                    if row["accuracy"] is None or base["accuracy"] is None
                    else f", {100 * (row['accuracy'] - base['accuracy']):+.2f} pt"
                )
                parts.append(
                    f"{row['runtime']} {row['precision']} {row['latency_ms_p50']:.3f} ms "
                    f"(x{base['latency_ms_p50'] / row['latency_ms_p50']:.2f}{acc})"
                )
            lines.append(f"{model} b{batch}: " + "; ".join(parts))
    teachers = {
        (r["group"], r["batch_size"]): r
        for r in rows
        if r["stage"] == "teacher" and (r["runtime"], r["precision"]) == ("onnxruntime", "fp32")
    }
    for (group, batch), teacher in teachers.items():
        students = [r for r in rows if r["group"] == group and r["stage"] == "student" and r["batch_size"] == batch]
        if students:
            best = min(students, key=lambda r: r["latency_ms_p50"])
            speedup = teacher["latency_ms_p50"] / best["latency_ms_p50"]
            lines.append(
                f"{group} b{batch}: fastest student row {best['arch']} {best['runtime']} {best['precision']} "
                f"{best['latency_ms_p50']:.3f} ms = x{speedup:.1f} "
                f"vs teacher {teacher['arch']} onnxruntime fp32 {teacher['latency_ms_p50']:.3f} ms"
            )
    return lines


if __name__ == "__main__":
    for name in sys.argv[1:]:
        print("\n".join(ratios(Path(name))), end="\n\n")
