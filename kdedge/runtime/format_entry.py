"""What one row of the export-format table is (kdedge.runtime.formats holds the rows and the look-ups): a
file format's name, suffix, the packages and pip extras that convert and run it, its precisions, bench
runtimes and devices, and whether this machine can convert or run it. Pure data and importlib look-ups: no
torch, no runtime import.
"""

from __future__ import annotations

import importlib.util
import platform
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Format:
    """One file format. convert_modules / run_modules: what must be importable to write / to run it;
    extra / run_extra: the pip extras that bring them. converter / runner: "module:attribute" (None: the
    format has no converter / runner of its own here). dynamic_batch: one file serves every batch size
    (else one fixed-batch file per batch size). metadata: "inside" the file (Core ML's user-defined
    metadata: kdedge.runtime.edge_meta reads it), or a "sidecar" .json (any format)."""

    name: str
    suffix: str
    title: str
    extra: str | None  # pip extra for converting (None: kdedge's own dependencies)
    run_extra: str | None  # pip extra for running only (what a device needs)
    convert_modules: tuple[str, ...]
    run_modules: tuple[str, ...]
    precisions: tuple[str, ...]
    runtimes: tuple[str, ...]  # bench runtime names that run files of this format
    devices: tuple[str, ...]  # "cpu", "gpu"
    converter: str | None
    runner: str | None
    dynamic_batch: bool
    metadata: str  # "inside" | "sidecar"
    only_on: str | None = None  # platform.system() it runs on, when not every one (Core ML: Darwin)
    note: str = ""
    hint: str = ""  # the install line when it is not a kdedge extra (TensorRT)
    settings: str = ""  # how kdedge's runner sets the runtime up: its fastest settings on a CPU (docs/formats.md)
    exporter: str = ""  # the pip distribution whose version export records as kdedge.exporter (default: name)
    structure: str | None = None  # "module:function(path, chw)": the check where it cannot run (Core ML off macOS)

    @property
    def edge(self) -> bool:
        """Files of its own, written by its converter and run by its runner: every format with a converter
        but ONNX, the base format (its files are written by kdedge.export.runner and run by onnxruntime,
        OpenVINO and TensorRT, the formats without a converter)."""
        return self.converter is not None and self.name != "onnx"

    def as_dict(self) -> dict[str, Any]:
        """The entry as JSON-able data (what bench sends the child process that runs a file)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Format:
        """The entry as_dict() described (JSON lists back to tuples)."""
        return cls(**{key: tuple(value) if isinstance(value, list) else value for key, value in data.items()})

    def pip_hint(self, run_only: bool = False) -> str:
        """The install line for this format's extra, e.g. pip install 'kdedge-distill[executorch]'."""
        if self.hint:
            return self.hint
        extra = self.run_extra if run_only else self.extra
        return f"pip install 'kdedge-distill[{extra}]'" if extra else "pip install kdedge-distill"

    def missing(self, modules: tuple[str, ...]) -> list[str]:
        """The modules of `modules` that cannot be imported here."""
        return [m for m in modules if importlib.util.find_spec(m) is None]

    def can_convert(self) -> bool:
        return not self.missing(self.convert_modules)

    def can_run(self) -> bool:
        """The runtime is installed AND this platform runs the format (Core ML: macOS only)."""
        return not self.missing(self.run_modules) and self.run_skip_reason() is None

    def run_skip_reason(self) -> str | None:
        """Why files of this format cannot run on this machine at all, or None."""
        if self.only_on and platform.system() != self.only_on:
            return f"runs on {'macOS' if self.only_on == 'Darwin' else self.only_on} only"
        return None
