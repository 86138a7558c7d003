"""Is an int8 file worth deploying for its speed? An int8 file is smaller, but on a given CPU and runtime it is
not always faster than its fp32 file (no VNNI / AMX, a runtime that falls back to fp32 kernels, quantise and
dequantise nodes around every layer of a small model). bench flags such a row, and neither the bench table's
deploy mark nor `kdedge export --target` offers it: the fp32 file is as fast and more accurate.

The comparison is between rows of one bench: the same model (run, label, stage), runtime, device and batch
size, so the same format on the same machine; both timed p50 in milliseconds.
"""

from __future__ import annotations

from typing import Any

NOTE = "int8 not faster than fp32"


def _pair_key(row: dict[str, Any]) -> tuple:
    """What an int8 row and its fp32 row share: model, runtime (so format), device and batch size."""
    return row.get("run"), row["model"], row.get("stage"), row["runtime"], row["device"], row["batch_size"]


def _timed(row: dict[str, Any]) -> bool:
    return row.get("status") == "ok" and row.get("latency_ms_p50") is not None


def fp32_twin(row: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The timed fp32 row of `row`'s model, runtime, device and batch, or None."""
    key = _pair_key(row)
    return next((r for r in rows if r["precision"] == "fp32" and _timed(r) and _pair_key(r) == key), None)


def int8_not_faster(row: dict[str, Any], rows: list[dict[str, Any]]) -> bool:
    """True when `row` is a timed int8 row whose p50 is >= the p50 of its fp32 twin in `rows` (no twin: False,
    there is nothing to compare it with)."""
    if row["precision"] != "int8" or not _timed(row):
        return False
    twin = fp32_twin(row, rows)
    return twin is not None and row["latency_ms_p50"] >= twin["latency_ms_p50"]


def flag_slow_int8(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Set row['int8_not_faster'] (True / False) on every row; returns the flagged rows."""
    for row in rows:
        row["int8_not_faster"] = int8_not_faster(row, rows)
    return [row for row in rows if row["int8_not_faster"]]


def flag_line(rows: list[dict[str, Any]]) -> str | None:
    """The line under the bench table naming the int8 files that are not faster than fp32, or None."""
    flagged = [r for r in rows if r.get("int8_not_faster")]
    if not flagged:
        return None
    named = ", ".join(dict.fromkeys(f"{r['model']} {r['runtime']} (batch {r['batch_size']})" for r in flagged).keys())
    return (
        f"! {NOTE}: {named}: the int8 file is not faster than the fp32 file of the same runtime and batch on "
        "this machine, so it is not offered as the deploy choice (* marks the fastest file within the "
        "accuracy bound of fp32)"
    )
