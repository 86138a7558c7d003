"""What `kdedge export --format ... --batch ...` will write, checked before any work: the formats by name
(kdedge.runtime.formats), every converter installed, the batch sizes of fixed-batch formats."""

from __future__ import annotations

from dataclasses import dataclass

from kdedge.errors import InputError
from kdedge.runtime.formats import Format, parse_formats


def require_converters(formats: list[Format]) -> None:
    """Before any work: one InputError naming the pip install of every asked format that cannot convert."""
    lacking = [f for f in formats if not f.can_convert()]
    if lacking:
        raise InputError(
            "; ".join(
                f"--format {f.name} needs {', '.join(f.missing(f.convert_modules))}: {f.pip_hint()}" for f in lacking
            )
        )


@dataclass(frozen=True)
class FormatPlan:
    """What `kdedge export --format` will do: write the ONNX files (also for openvino / tensorrt, which
    run them), the edge formats' own files, and the batch sizes of fixed-batch formats."""

    onnx: bool
    edge: list[Format]
    batches: list[int]


def parse_batches(text: str | list[int]) -> list[int]:
    """'1,32' -> [1, 32] (sorted, unique); InputError for anything but whole numbers >= 1."""
    try:
        values = [int(p) for p in text.split(",") if p.strip()] if isinstance(text, str) else list(text)
    except ValueError:
        raise InputError(f"--batch: expected whole numbers like 1,32 (got '{text}')") from None
    if not values or min(values) < 1:
        raise InputError(f"--batch: expected numbers >= 1 like 1,32 (got '{text}')")
    return sorted(set(values))


def plan_formats(formats: str | list[str], batches: str | list[int] = "1") -> FormatPlan:
    """Parse --format and --batch and check every converter is installed, before any work."""
    chosen = parse_formats(formats)
    require_converters(chosen)
    edge = [f for f in chosen if f.edge]
    onnx = any(not f.edge for f in chosen)
    return FormatPlan(onnx, edge, parse_batches(batches))
