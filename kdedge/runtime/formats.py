"""The one table of export formats: what `kdedge export --format`, `kdedge bench`, `kdedge predict`,
`export --target`, the Pareto plot and `kdedge formats` know about each file format, and the look-ups on it.

Adding a format is one `Format` entry here (its fields: kdedge/runtime/format_entry.py) plus its converter
(kdedge/export/<name>_convert.py, a `convert(job) -> None` function) and its runner (a class in
kdedge/runtime/edge_runners.py with the runner protocol of kdedge.bench.runners). Every reader looks the
table up when it runs, and bench's child processes get the entry of the file they run, so an entry added
from a script (FORMATS[name] = Format(...)) works as well as one written here. Pure data and importlib
look-ups: no torch, no runtime import, so bench and predict can read it on a device that has only a runtime
installed.
"""

from __future__ import annotations

from kdedge.errors import InputError, did_you_mean
from kdedge.runtime.format_entry import Format

__all__ = [
    "FORMATS",
    "Format",
    "file_runtimes",
    "format_of_file",
    "get_format",
    "parse_formats",
    "runtime_format",
    "table_rows",
]


FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format(
            "onnx",
            ".onnx",
            "ONNX",
            None,
            None,
            ("onnx", "onnxruntime"),
            ("onnxruntime",),
            ("fp32", "fp16", "int8"),
            ("onnxruntime", "openvino"),
            ("cpu", "gpu"),
            "kdedge.export.runner:export_run",
            "kdedge.bench.runners:OrtRunner",
            True,
            "inside",
            note="metadata_props; fp16 is for the GPU",
            settings="onnxruntime: graph optimisation ORT_ENABLE_ALL, intra-op threads = --threads, inter-op 1, "
            "sequential",
        ),
        Format(
            "openvino",
            ".onnx",
            "OpenVINO",
            "openvino",
            "openvino",
            ("openvino",),
            ("openvino",),
            ("fp32", "int8"),
            ("openvino",),
            ("cpu",),
            None,
            "kdedge.bench.runners:OpenVinoRunner",
            True,
            "inside",
            note="runs the ONNX files (IR cached per file); --format openvino writes the ONNX files",
            settings="CPU plugin: PERFORMANCE_HINT LATENCY, 1 stream, INFERENCE_NUM_THREADS = --threads, "
            "INFERENCE_PRECISION_HINT f32 (bf16 row: bf16), static batch per row",
        ),
        Format(
            "executorch",
            ".pte",
            "ExecuTorch (XNNPACK)",
            "executorch",
            "executorch",
            ("executorch",),
            ("executorch",),
            ("fp32", "int8"),
            ("executorch",),
            ("cpu",),
            "kdedge.export.executorch_convert:convert",
            "kdedge.runtime.edge_runners:ExecuTorchRunner",
            True,
            "sidecar",
            exporter="executorch",
            note="int8: pt2e + XNNPACKQuantizer calibrated on training images",
            settings="XNNPACK thread pool = --threads; one call takes up to the file's batch bound (1024, or 64 MiB "
            "of input), larger sets go in chunks",
        ),
        Format(
            "litert",
            ".tflite",
            "LiteRT (TFLite)",
            "litert-convert",
            "litert",
            ("litert_torch",),
            ("ai_edge_litert",),
            ("fp32", "fp16", "int8"),
            ("litert",),
            ("cpu",),
            "kdedge.export.litert_convert:convert",
            "kdedge.runtime.edge_runners:LiteRtRunner",
            False,
            "sidecar",
            exporter="litert-torch",
            note="fixed batch (litert-torch traces no dynamic one); int8: full integer",
            settings="Interpreter num_threads = --threads, default op resolver (XNNPACK delegate applied)",
        ),
        Format(
            "ncnn",
            ".ncnn",
            "NCNN (pnnx)",
            "ncnn-convert",
            "ncnn",
            ("pnnx", "ncnn"),
            ("ncnn",),
            ("fp32", "fp16"),
            ("ncnn",),
            ("cpu",),
            "kdedge.export.ncnn_convert:convert",
            "kdedge.runtime.ncnn_runner:NcnnRunner",
            True,
            "sidecar",
            exporter="pnnx",
            note="a folder: model.ncnn.param + .bin; one image per call; int8 needs ncnn2int8 (not on PyPI)",
            settings="num_threads = --threads, no Vulkan; fp16 storage/arithmetic on for fp16 folders only",
        ),
        Format(
            "mnn",
            ".mnn",
            "MNN",
            "mnn",
            "mnn",
            ("MNN", "onnx"),
            ("MNN",),
            ("fp32", "fp16"),
            ("mnn",),
            ("cpu",),
            "kdedge.export.mnn_convert:convert",
            "kdedge.runtime.mnn_runner:MnnRunner",
            True,
            "sidecar",
            exporter="MNN",
            note="converted from kdedge's ONNX file by MNN's converter; fp16 = fp16 weights",
            settings="CPU backend, numThread = --threads, precision high (fp32 arithmetic)",
        ),
        Format(
            "coreml",
            ".mlpackage",
            "Core ML",
            "coreml",
            "coreml",
            ("coremltools",),
            ("coremltools",),
            ("fp32", "fp16"),
            ("coreml",),
            ("cpu", "gpu"),
            "kdedge.export.coreml_convert:convert",
            None,
            True,
            "inside",
            only_on="Darwin",
            exporter="coremltools",
            structure="kdedge.export.coreml_convert:structure",
            note="converts on Linux; checked structurally (spec, inputs/outputs, metadata)",
            settings="not run by kdedge (macOS only)",
        ),
        Format(
            "tensorrt",
            ".onnx",
            "TensorRT",
            None,
            None,
            ("onnxruntime",),
            ("onnxruntime", "tensorrt"),
            ("fp32", "fp16", "int8"),
            ("onnxruntime-trt",),
            ("gpu",),
            None,
            "kdedge.bench.runners:OrtRunner",
            True,
            "inside",
            note="the ONNX files through onnxruntime's TensorRT provider",
            settings="TensorRT provider, then CUDA, then CPU; graph optimisation ORT_ENABLE_ALL",
            hint="a CUDA GPU with pip install onnxruntime-gpu tensorrt",
        ),
    )
}


def get_format(name: str) -> Format:
    """The table entry of `name`; InputError listing the known ones."""
    if name not in FORMATS:
        by_suffix = [f.name for f in FORMATS.values() if f.suffix.lstrip(".") == name.lstrip(".").lower()]
        hint = f" did you mean '{by_suffix[0]}'?" if by_suffix else did_you_mean(name, FORMATS)  # pte: executorch
        raise InputError(f"--format: unknown format '{name}';{hint} allowed: {', '.join(FORMATS)}")
    return FORMATS[name]


def parse_formats(text: str | list[str] | tuple[str, ...]) -> list[Format]:
    """'onnx,executorch' -> their entries, in table order; unknown names and an empty list are InputErrors."""
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    if not names:
        raise InputError(f"--format: give at least one of {', '.join(FORMATS)}")
    wanted = {get_format(n).name for n in names}
    return [f for f in FORMATS.values() if f.name in wanted]


def format_of_file(path: str) -> Format | None:
    """The format a file belongs to by its suffix (.onnx -> onnx, .pte, .tflite, .mlpackage, .ncnn, .mnn), or
    None."""
    lowered = str(path).rstrip("/").lower()
    return next((f for f in FORMATS.values() if f.converter and lowered.endswith(f.suffix)), None)


def runtime_format(runtime: str) -> Format | None:
    """The format whose files a bench runtime runs (onnxruntime -> onnx, litert -> litert, ...)."""
    return next((f for f in FORMATS.values() if runtime in f.runtimes), None)


def file_runtimes() -> tuple[str, ...]:
    """Every bench runtime that runs an exported file (what `export --target` may deploy)."""
    return tuple(dict.fromkeys(r for f in FORMATS.values() for r in f.runtimes))


def table_rows() -> list[dict[str, str]]:
    """`kdedge formats`: one dict per format, with what is installed here."""
    rows = []
    for f in FORMATS.values():
        convert = "yes" if f.can_convert() else f"no: {f.pip_hint()}"
        reason = f.run_skip_reason()
        missing_run = f.missing(f.run_modules)
        run = reason or (f"no: {f.pip_hint(run_only=True)}" if missing_run else "yes")
        rows.append(
            {
                "format": f.name,
                "suffix": f.suffix,
                "precisions": ",".join(f.precisions),
                "runtimes": ",".join(f.runtimes),
                "devices": ",".join(f.devices),
                "batch": "dynamic" if f.dynamic_batch else "fixed per file",
                "metadata": f.metadata,
                "extra": f.extra or "-",
                "convert here": convert if f.converter else "(uses the onnx files)",
                "run here": run,
                "runtime settings": f.settings or "-",
                "note": f.note,
            }
        )
    return rows
