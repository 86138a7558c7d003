"""How an export is reported: one line per file as it finishes, one rich table at the end."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rich.table import Table

from kdedge.ui.tables import Column, fitted_table


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
    fmt: str = "onnx"  # the kdedge.runtime.formats name
    batch: int | None = None  # a fixed-batch file's batch size (None: dynamic batch)

    @property
    def name(self) -> str:
        return f"{self.stage}.{self.precision}"


def _fmt(value: float | None, spec: str, scale: float = 1.0) -> str:
    return "-" if value is None else format(value * scale, spec)


def file_line(row: ExportRow) -> str:
    """One plain line per finished file (the export's progress). Random-input parity with PyTorch is
    said for fp32 only: fp16 / int8 are judged by their agreement with fp32 on real test images (on
    random inputs int8 logits are far from fp32 by design and the number would only alarm)."""
    if row.status != "ok":
        return f"{row.name}: FAILED ({row.status})"
    parity = (
        f"max |onnx - torch| {row.max_abs_diff:.2e} (rel {row.rel_diff:.1e}), top-1 agreement "
        f"{100 * row.random_agreement:.0f}% on random batches of 1 and 7; "
        if row.precision == "fp32"
        else f"top-1 agreement with fp32 {100 * row.test_agreement:.2f}% on {row.test_count} real test "
        f"images (max |Δ| {row.test_max_abs_diff:.1e}); "
    )
    rescued = (
        f"; int8 rescue {row.extra['int8_rescue']} ({row.extra['rescue_note']})" if "int8_rescue" in row.extra else ""
    )
    return (
        f"{row.name}: checker ok; {parity}test acc {100 * row.test_accuracy:.2f}% (n={row.test_count}); "
        f"{row.size_mb:.2f} MB in {row.seconds:.1f} s{rescued}"
    )


def _status_word(status: str) -> str:
    """The status legend: ok / skipped / exported but failed its check / export failed."""
    if status == "ok" or status.startswith("skipped"):
        return status.split(":")[0]
    if status.startswith("exported but failed its check"):
        return "check FAILED"
    return "export FAILED"


# The file names the row: never hidden or cut. Narrow terminals lose the seconds first, then the details.
COLUMNS = (
    Column("file", key=True, left=True),
    Column("status", left=True),
    Column("MB"),
    Column("x smaller", drop=3),
    Column("|Δ| torch", drop=2),
    Column("|Δ| fp32", drop=4),
    Column("test acc %"),
    Column("=fp32 %"),
    Column("s", drop=1),
)
CAPTION = (
    "|Δ| torch: max |onnx - torch| on random inputs (fp32 only); |Δ| fp32 and =fp32 %: max logit "
    "difference and top-1 agreement with the fp32 file on the real test images"
)


def export_table(rows: list[ExportRow], title: str, width: int = 200, wide: bool = False) -> Table:
    """One row per file, fitted to `width` characters (see kdedge.ui.tables); s: seconds to convert and
    check the file."""
    fp32_size = {(r.stage, r.fmt, r.batch): r.size_mb for r in rows if r.precision == "fp32" and r.size_mb}
    cells = []
    for row in rows:
        reference = fp32_size.get((row.stage, row.fmt, row.batch))
        ratio = reference / row.size_mb if row.size_mb and reference else None
        cells.append(
            [
                Path(row.path).name if row.path else f"{row.name} ({row.fmt})",
                _status_word(row.status),
                _fmt(row.size_mb, ".2f"),
                _fmt(ratio, ".1f") if row.precision != "fp32" else "",
                _fmt(row.max_abs_diff if row.precision == "fp32" else None, ".1e"),
                _fmt(row.test_max_abs_diff if row.precision != "fp32" else None, ".1e"),
                _fmt(row.test_accuracy, ".2f", 100),
                _fmt(row.test_agreement if row.precision != "fp32" else None, ".2f", 100),
                f"{row.seconds:.1f}",
            ]
        )
    return fitted_table(title, COLUMNS, cells, width, wide, CAPTION, more="--wide")
