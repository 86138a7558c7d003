"""Cost measurements kept between searches, keyed by (candidate, target, threads, batch, machine): a second
search with another budget (or another recipe of the same data shape) finds them at once.

JSON files of {key: record}: the search's own SEARCH/costs.json (a resumed search uses exactly the figures
it measured before) and the shared `--cost-cache` (default $KDEDGE_CACHE/search_costs.json, else
~/.cache/kdedge/search_costs.json). Every write re-reads a file and adds to it (temp file + rename), so two
searches sharing one lose at most an entry written in the same instant. An unreadable file is said once
and replaced: it is only a cache.
"""

from __future__ import annotations

import hashlib
import json
import os
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from kdedge.bench.results import machine_info
from kdedge.experiments.search.space import Candidate
from kdedge.files.atomic import atomic_write_text
from kdedge.ui.console import warn

RUNTIME_PACKAGES = {
    "onnxruntime": "onnxruntime",
    "openvino": "openvino",
    "executorch": "executorch",
    "litert": "ai-edge-litert",
}


def default_cache_file() -> Path:
    """$KDEDGE_CACHE/search_costs.json, else ~/.cache/kdedge/search_costs.json."""
    root = os.environ.get("KDEDGE_CACHE") or Path.home() / ".cache" / "kdedge"
    return Path(root).expanduser() / "search_costs.json"


def runtime_version(runtime: str) -> str:
    """The installed version of the package that runs the target (a new runtime may be faster)."""
    try:
        return metadata.version(RUNTIME_PACKAGES.get(runtime, runtime))
    except metadata.PackageNotFoundError:
        return "?"


def machine_identity(threads: int) -> dict[str, Any]:
    """CPU model, cores and the instruction-set flags that decide int8 speed (kdedge.bench.results)."""
    info = machine_info(SimpleNamespace(threads=threads, device="cpu"))
    return {key: info[key] for key in ("cpu", "cores", "cpu_flags")}


class CostCache:
    """The measurements of one context: target, threads, batch, machine, runtime version, timing settings,
    the data's classes and channels (the head and the first layer) and the int8 scheme."""

    def __init__(self, paths: list[Path], context: dict[str, Any]) -> None:
        self.paths = paths  # read in this order; each record is written to all of them
        self.context = context
        self._warned: set[Path] = set()

    def key(self, candidate: Candidate) -> str:
        text = json.dumps([candidate.key(), self.context], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:20]

    def _read(self, path: Path) -> dict[str, Any]:
        if not path.is_file():
            return {}
        try:
            content = json.loads(path.read_text())
            return content if isinstance(content, dict) else {}
        except (OSError, ValueError) as err:
            if path not in self._warned:
                warn(f"cost cache {path} unreadable ({type(err).__name__}); measuring again and replacing it")
                self._warned.add(path)
            return {}

    def get(self, candidate: Candidate) -> dict[str, Any] | None:
        """The record measured earlier for this candidate in this context, or None; `from` says where it
        was found: 'search' (the first file: the search's own) or 'shared cache'."""
        for index, path in enumerate(self.paths):
            record = self._read(path).get(self.key(candidate))
            if isinstance(record, dict):
                figures = {k: v for k, v in record.items() if k not in ("candidate", "context")}
                return figures | {"from": "search" if index == 0 else "shared cache"}
        return None

    def put(self, candidate: Candidate, record: dict[str, Any]) -> None:
        """Add one record (with the candidate and context it was measured in, for a reader of the file)."""
        for path in self.paths:
            content = self._read(path)
            figures = {k: v for k, v in record.items() if k != "from"}
            content[self.key(candidate)] = figures | {"candidate": candidate.key(), "context": self.context}
            atomic_write_text(path, json.dumps(content, indent=1, sort_keys=True))
