"""The edge files (kdedge.runtime.formats: .pte, .tflite, .mlpackage, ...) bench finds in RUN/export or is given
as bare files, keyed (format, precision, batch) -> file; batch is None for a dynamic-batch file.
Torch-free: metadata comes from the sidecar / package (kdedge.runtime.edge_meta)."""

from __future__ import annotations

from pathlib import Path

from kdedge.runtime.edge_meta import read_edge_metadata
from kdedge.runtime.formats import FORMATS, format_of_file

EdgeKey = tuple[str, str, "int | None"]


def edge_suffixes() -> tuple[str, ...]:
    """The suffixes of every edge format in the table (Format.edge)."""
    return tuple(dict.fromkeys(f.suffix for f in FORMATS.values() if f.edge))


def is_edge_file(path: Path) -> bool:
    """The path's suffix is an edge format's (not ONNX's)."""
    fmt = format_of_file(str(path))
    return fmt is not None and fmt.edge


def edge_key(path: Path, meta: dict[str, str]) -> EdgeKey:
    """(format, precision, batch) of one file from its metadata (the file name as a fallback)."""
    fmt = format_of_file(str(path))
    precision = meta.get("kdedge.precision") or path.name.split(".")[1]
    batch = meta.get("kdedge.batch_size")
    return fmt.name, precision, int(batch) if batch else None


def edge_files(folder: Path, stage: str) -> dict[EdgeKey, str]:
    """The stage's edge files in a run's export folder (stage from metadata, else the file name)."""
    found: dict[EdgeKey, str] = {}
    for suffix in edge_suffixes():
        for path in sorted(folder.glob(f"*{suffix}")):
            meta = read_edge_metadata(path)
            if meta.get("kdedge.stage", path.name.split(".")[0]) == stage:
                found[edge_key(path, meta)] = str(path)
    return found


def edge_rows(files: dict[EdgeKey, str], runtimes: tuple[str, ...]) -> list[tuple[str, str, str, str, int | None]]:
    """(runtime, precision, file, preset skip reason, fixed batch) per edge file whose runtime is asked."""
    out = []
    for (name, precision, batch), file in sorted(files.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] or 0)):
        fmt = FORMATS[name]
        runtime = fmt.runtimes[0]
        if runtime in runtimes:
            out.append((runtime, precision, file, fmt.run_skip_reason() or "", batch))
    return out
