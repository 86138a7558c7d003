"""`kdedge report PATH`: PATH/report.md with tables and PNGs, for a run or a sweep directory."""

from __future__ import annotations

from pathlib import Path

from kdedge.report.markdown import write_report
from kdedge.ui.console import console


def report_command(path: Path) -> Path:
    """Write the report and say where it is."""
    written = write_report(path)
    console.print(f"report: {written}")
    return written
