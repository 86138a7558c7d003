"""Where the result files live, how they are read (file name -> parsed JSON) and how a table file is written."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results"
Files = Mapping[str, Any]  # bench/results/<name>.json -> its content


class ResultFileError(ValueError):
    """A result file that cannot be read, or lacks a key a table needs."""


def read_results(folder: Path = RESULTS) -> dict[str, Any]:
    """Every *.json of `folder`, by file name, parsed."""
    files = {}
    for path in sorted(folder.glob("*.json")):
        try:
            files[path.name] = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ResultFileError(f"{path}: cannot read it as JSON: {err}") from None
    return files


def table_text(table: dict, indent: int = 2, ensure_ascii: bool = True) -> str:
    """A table file's text, as the generators have always written it."""
    return json.dumps(table, indent=indent, ensure_ascii=ensure_ascii) + "\n"


def as_run(date: str, commands: list[str]) -> list[str]:
    """The command lines of a result as they were run, under a dated comment; lines that called a benchmark
    script since replaced by a study file (its command comes first in the table) are left to the source file."""
    ran = [line for line in commands if "bench/" not in line]
    return [f"# as measured on {date}:", *ran] if ran else []
