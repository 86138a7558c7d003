"""How an export ends: the table of every file, then one error line that names each failed file with its
format and says what to try when a file missed the agreement bound."""

from __future__ import annotations

from pathlib import Path

from kdedge.errors import RuntimeFailure
from kdedge.export.int8_rescue import what_to_try
from kdedge.export.options import Settings
from kdedge.export.table import ExportRow, export_table


class ExportFailed(RuntimeFailure):
    """Some file failed its checks (the message names each); `rows` are every file's row, the passed ones
    included, so a caller can still use the files that were written."""

    def __init__(self, message: str, rows: list[ExportRow]) -> None:
        super().__init__(message)
        self.rows = rows


def report(rows: list[ExportRow], run_path: Path, opset: int, quiet: bool, force: bool, wide: bool = False) -> None:
    """The table of every file (unless quiet), then one RuntimeFailure that names each failed file with its
    format, and what to try when one missed the agreement bound."""
    from kdedge.ui.console import print_table, table_width

    if not quiet:
        width = table_width()
        print_table(export_table(rows, title(rows, run_path, opset), width, wide), width)
    failed = [r for r in rows if not passed(r)]
    if failed:
        kept = f"{run_path / 'export'} was left as it was (--force)" if force else "no file was written for these"
        names = "; ".join(f"{r.name} ({r.fmt}): {r.status}" for r in failed)
        missed = [best_agreement(r) for r in failed if "top-1 agreement" in r.status]
        hint = f"; {what_to_try(min(missed))}" if missed else ""
        raise ExportFailed(f"export failed for {names}; {kept}{hint}", rows)


def title(rows: list[ExportRow], run_path: Path, opset: int) -> str:
    """The table's title: the ONNX exporter only when an ONNX file was made, else the formats."""
    if any(row.fmt == "onnx" for row in rows):
        return f"{run_path}: export (ONNX: opset {opset}, dynamo exporter)"
    return f"{run_path}: export ({', '.join(dict.fromkeys(row.fmt for row in rows))})"


def best_agreement(row: ExportRow) -> float:
    """The highest top-1 agreement any try at this file reached (the rescues' included)."""
    return max(row.test_agreement or 0.0, row.extra.get("best_agreement", 0.0))


def threshold_failure(row: ExportRow, settings: Settings) -> str | None:
    """Why a measured file misses its bound (fp32: relative error vs PyTorch; others: top-1 agreement
    with fp32), or None when it meets it. A NaN never meets a bound."""
    if row.precision == "fp32" and not row.rel_diff <= settings.fp32_rtol:
        return f"max |onnx - torch| / max |torch| = {row.rel_diff:.1e} > fp32_rtol {settings.fp32_rtol:g}"
    if row.precision != "fp32" and not row.test_agreement >= settings.min_top1_agreement:
        return (
            f"top-1 agreement with fp32 on {row.test_count} test images {row.test_agreement:.4f} < "
            f"min_top1_agreement {settings.min_top1_agreement:g}"
        )
    return None


def passed(row: ExportRow) -> bool:
    """ok, or skipped for a reason that is no failure (a precision the format does not write)."""
    return row.status == "ok" or (row.status.startswith("skipped") and "failed" not in row.status)
