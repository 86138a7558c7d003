"""How an export is reported: one line per file as it finishes, one rich table at the end."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rich.table import Table


@dataclass
class ExportRow:
    """One file of an export: what it is, whether it was kept, and what was measured on it."""

    stage: str
    precision: str
    status: str = "ok"  # "ok", or why the file was not written
    seconds: float = 0.0  # conversion + checks of this file
    size_mb: float | None = None
    max_abs_diff: float | None = None  # vs PyTorch, random inputs at batch 1 and 7
    rel_diff: float | None = None
    random_agreement: float | None = None  # top-1 vs PyTorch on the same random inputs
    test_accuracy: float | None = None  # on the recipe's real test images, measured on this file
    test_agreement: float | None = None  # top-1 vs the fp32 file on real test images
    test_max_abs_diff: float | None = None  # vs the fp32 file's logits on real test images
    test_count: int = 0
    path: str = ""
    extra: dict = field(default_factory=dict)
    fmt: str = "onnx"  # the kdedge.export.formats name
    batch: int | None = None  # a fixed-batch file's batch size (None: dynamic batch)

    @property
    def name(self) -> str:
        return f"{self.stage}.{self.precision}"


def _fmt(value: float | None, spec: str, scale: float = 1.0) -> str:
    return "-" if value is None else format(value * scale, spec)


def file_line(row: ExportRow) -> str:
    """One plain line per finished file (the export's progress)."""
    if row.status != "ok":
        return f"{row.name}: FAILED ({row.status})"
    return (
        f"{row.name}: checker ok; max |onnx - torch| {row.max_abs_diff:.2e} (rel {row.rel_diff:.1e}), "
        f"top-1 agreement {100 * row.random_agreement:.0f}% on random batches of 1 and 7; test acc "
        f"{100 * row.test_accuracy:.2f}% (n={row.test_count}), agreement with fp32 "
        f"{100 * row.test_agreement:.2f}% (max |Δ| {row.test_max_abs_diff:.1e}); {row.size_mb:.2f} MB in "
        f"{row.seconds:.1f} s"
    )


def _status_word(status: str) -> str:
    """The status legend: ok / skipped / exported but failed its check / export failed."""
    if status == "ok" or status.startswith("skipped"):
        return status.split(":")[0]
    if status.startswith("exported but failed its check"):
        return "check FAILED"
    return "export FAILED"


def export_table(rows: list[ExportRow], title: str) -> Table:
    """One row per file. |Δ| torch: max |onnx - torch| on random batches of 1 and 7; |Δ| fp32: max
    |this - fp32 file| on the real test images; =fp32 %: top-1 agreement with the fp32 file there;
    s: seconds to convert and check the file."""
    table = Table(title=title)
    columns = ("file", "status", "MB", "x smaller", "|Δ| torch", "|Δ| fp32", "test acc %", "=fp32 %", "s")
    for column in columns:
        table.add_column(column, justify="left" if column in ("file", "status") else "right")
    fp32_size = {r.stage: r.size_mb for r in rows if r.precision == "fp32" and r.size_mb}
    for row in rows:
        ratio = (
            fp32_size.get(row.stage, 0) / row.size_mb if row.size_mb and fp32_size.get(row.stage) else None
        )
        table.add_row(
            Path(row.path).name if row.path else f"{row.name} ({row.fmt})",
            _status_word(row.status),
            _fmt(row.size_mb, ".2f"),
            _fmt(ratio, ".1f"),
            _fmt(row.max_abs_diff, ".1e"),
            _fmt(row.test_max_abs_diff, ".1e"),
            _fmt(row.test_accuracy, ".2f", 100),
            _fmt(row.test_agreement, ".2f", 100),
            f"{row.seconds:.1f}",
        )
    return table
