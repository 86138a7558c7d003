"""What a search aims at: `--target FORMAT-PRECISION` (a row of the format table with one of its precisions,
run by that format's runtime on this machine) and the budget every candidate's file must meet."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from kdedge.errors import InputError, did_you_mean
from kdedge.runtime.formats import FORMATS, Format

PERCENTILES = ("p50", "p90")


def target_names() -> list[str]:
    """Every FORMAT-PRECISION pair of the format table (whether this machine runs it or not)."""
    return [f"{fmt.name}-{precision}" for fmt in FORMATS.values() for precision in fmt.precisions]


@dataclass(frozen=True)
class Target:
    """`litert-int8`: the LiteRT file at int8, timed by the format's first runtime in the table (onnx:
    onnxruntime). A format without a converter of its own (openvino) runs the ONNX file: `export_format`
    is what `kdedge export --format` writes for it."""

    fmt: Format
    precision: str
    runtime: str

    @property
    def name(self) -> str:
        return f"{self.fmt.name}-{self.precision}"

    @property
    def export_format(self) -> str:
        return self.fmt.name if self.fmt.converter else "onnx"


def parse_target(text: str) -> Target:
    """'litert-int8' -> its Target; a name the table does not have, or a target this machine cannot
    convert or run (TensorRT without a GPU, Core ML off macOS, a missing extra), is one InputError."""
    name, _, precision = text.strip().rpartition("-")
    if name not in FORMATS or precision not in FORMATS[name].precisions:
        allowed = ", ".join(target_names())
        raise InputError(f"--target: unknown target '{text}';{did_you_mean(text, target_names())} allowed: {allowed}")
    fmt = FORMATS[name]
    if fmt.run_skip_reason():
        raise InputError(f"--target {text}: {fmt.title} files {fmt.run_skip_reason()}; this machine cannot time them")
    if "cpu" not in fmt.devices or fmt.runner is None:
        raise InputError(f"--target {text}: {fmt.title} needs {fmt.hint or 'a GPU'}; the search times on this CPU")
    if precision == "fp16" and name == "onnx":
        raise InputError(f"--target {text}: fp16 ONNX is for the GPU; on this CPU use onnx-fp32 or onnx-int8")
    missing = fmt.missing(fmt.run_modules) + (fmt.missing(fmt.convert_modules) if fmt.converter else [])
    if missing:
        raise InputError(f"--target {text} needs {', '.join(missing)}: {fmt.pip_hint()}")
    return Target(fmt, precision, fmt.runtimes[0])


@dataclass(frozen=True)
class Budget:
    """The most a file may cost: latency (ms at the chosen percentile, batch and threads), file size (MB,
    10^6 bytes) and, optionally, peak memory (MiB above the bare runtime process)."""

    latency_ms: float
    size_mb: float | None = None
    peak_mb: float | None = None
    percentile: str = "p50"

    def check(self) -> None:
        """Bad numbers are bad input: one line naming the option."""
        if self.percentile not in PERCENTILES:
            raise InputError(f"--percentile: allowed are {', '.join(PERCENTILES)} (got '{self.percentile}')")
        for option, value in (
            ("--latency-ms", self.latency_ms),
            ("--size-mb", self.size_mb),
            ("--peak-mb", self.peak_mb),
        ):
            if value is not None and not (math.isfinite(value) and value > 0):
                raise InputError(f"{option}: must be a number > 0 (got {value})")

    @property
    def latency_key(self) -> str:
        return f"latency_ms_{self.percentile}"

    def misses(self, row: dict[str, Any]) -> list[str]:
        """What a measured row exceeds, in words ('latency p50 2.41 ms > 2 ms'); [] when it fits."""
        found = []
        latency = row.get(self.latency_key)
        if latency is not None and latency > self.latency_ms:
            found.append(f"latency {self.percentile} {latency:.3g} ms > {self.latency_ms:g} ms")
        if self.size_mb is not None and (row.get("size_mb") or 0) > self.size_mb:
            found.append(f"size {row['size_mb']:.3g} MB > {self.size_mb:g} MB")
        if self.peak_mb is not None and (row.get("peak_mem_mb") or 0) > self.peak_mb:
            found.append(f"peak memory {row['peak_mem_mb']:.3g} MiB > {self.peak_mb:g} MiB")
        return found

    def overshoot(self, row: dict[str, Any]) -> float:
        """The largest ratio measured / bound (<= 1: within the budget); how close a miss came."""
        ratios = [(row.get(self.latency_key) or math.inf) / self.latency_ms]
        if self.size_mb is not None:
            ratios.append((row.get("size_mb") or math.inf) / self.size_mb)
        if self.peak_mb is not None:
            ratios.append((row.get("peak_mem_mb") or 0) / self.peak_mb)
        return max(ratios)

    def describe(self) -> str:
        parts = [f"latency {self.percentile} <= {self.latency_ms:g} ms"]
        parts += [f"size <= {self.size_mb:g} MB"] if self.size_mb is not None else []
        parts += [f"peak memory <= {self.peak_mb:g} MiB"] if self.peak_mb is not None else []
        return ", ".join(parts)
