"""Runners: one `predict(batch) -> logits` protocol over PyTorch, onnxruntime and OpenVINO.

batch: (N, C, H, W) float32, already normalised; logits: (N, num_classes) float32 numpy.
`bind(batch)` returns a no-argument call on a batch already resident where the runtime wants it
(on the GPU for CUDA), which is what timing measures; `sync()` waits for queued device work.
torch / onnxruntime / openvino are imported inside the builders, so an onnxruntime row never pays
for importing torch and a missing optional runtime is a `Skip`, not an ImportError.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from kdedge.bench.ov_cache import read_cached
from kdedge.runtime.formats import Format, file_runtimes, runtime_format


class Skip(Exception):
    """The runner cannot run here (runtime not installed, no such hardware); the row says why."""


class Runner(Protocol):
    detail: str  # what exactly ran: provider, precision hint, threads

    def predict(self, batch: np.ndarray) -> np.ndarray: ...

    def bind(self, batch: np.ndarray) -> Callable[[], object]: ...

    def sync(self) -> None: ...


class TorchRunner:
    """PyTorch eager (or torch.compile) on cpu/cuda; fp16 = the whole model in half precision (GPU only)."""

    def __init__(self, model, device: str, precision: str, compile_model: bool, threads: int) -> None:
        import torch

        torch.set_num_threads(threads)
        self.torch, self.device = torch, torch.device(device)
        self.dtype = torch.float16 if precision == "fp16" else torch.float32
        model = model.to(self.device, self.dtype).eval()
        self.model = torch.compile(model) if compile_model else model
        self.detail = f"{'compiled' if compile_model else 'eager'}, {threads} threads"

    def _forward(self, x):
        with self.torch.inference_mode():
            return self.model(x)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        x = self.torch.from_numpy(np.ascontiguousarray(batch)).to(self.device, self.dtype)
        return self._forward(x).float().cpu().numpy()

    def bind(self, batch: np.ndarray) -> Callable[[], object]:
        x = self.torch.from_numpy(np.ascontiguousarray(batch)).to(self.device, self.dtype)
        return lambda: self._forward(x)

    def sync(self) -> None:
        if self.device.type == "cuda":
            self.torch.cuda.synchronize()


class OrtRunner:
    """onnxruntime InferenceSession; CPU provider, or CUDA / TensorRT when onnxruntime-gpu has them."""

    PROVIDERS = {
        "cpu": ["CPUExecutionProvider"],
        "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
        "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
    }

    def __init__(self, path: str, provider: str, threads: int) -> None:
        if importlib.util.find_spec("onnxruntime") is None:
            raise Skip("onnxruntime is not installed")
        import onnxruntime as ort

        wanted = self.PROVIDERS[provider]
        if wanted[0] not in ort.get_available_providers():
            raise Skip(f"{wanted[0]} not available (install onnxruntime-gpu; have {ort.get_available_providers()})")
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(path, options, providers=wanted)
        if self.session.get_providers()[0] != wanted[0]:
            raise Skip(f"{wanted[0]} could not be created (session fell back to {self.session.get_providers()})")
        first = self.session.get_inputs()[0]
        self.input_name = first.name
        self.input_dtype = np.float16 if first.type == "tensor(float16)" else np.float32
        self.detail = f"{wanted[0]}, {threads} threads"

    def predict(self, batch: np.ndarray) -> np.ndarray:
        feed = {self.input_name: np.ascontiguousarray(batch, dtype=self.input_dtype)}
        return np.asarray(self.session.run(None, feed)[0], dtype=np.float32)

    def bind(self, batch: np.ndarray) -> Callable[[], object]:
        feed = {self.input_name: np.ascontiguousarray(batch, dtype=self.input_dtype)}
        return lambda: self.session.run(None, feed)

    def sync(self) -> None:
        """session.run returns only when the outputs are on the host."""


class OpenVinoRunner:
    """OpenVINO CPU plugin reading the ONNX file's cached IR (kdedge.bench.ov_cache), compiled for a
    static batch with explicit threads, one stream, the LATENCY hint and an explicit inference precision
    (f32 or bf16; an int8 QDQ file runs its int8 kernels under f32 for the rest)."""

    def __init__(self, path: str, precision: str, threads: int, batch_size: int) -> None:
        if importlib.util.find_spec("openvino") is None:
            raise Skip("openvino is not installed (pip install 'kdedge-distill[openvino]')")
        import openvino as ov

        core = ov.Core()
        capabilities = core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
        if precision == "bf16" and "BF16" not in capabilities:
            raise Skip(f"no bf16 on this CPU (OpenVINO CPU has {'/'.join(capabilities)})")
        model, source = read_cached(core, Path(path))  # IR converted once per ONNX content, then reused
        partial = model.input(0).get_partial_shape()  # the export's batch dim is dynamic: fix it per row
        model.reshape(
            {
                model.input(0): [
                    batch_size,
                    *[partial[i].get_length() for i in range(1, partial.rank.get_length())],
                ]
            }
        )
        config = {
            "INFERENCE_NUM_THREADS": threads,
            "NUM_STREAMS": 1,
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",
        }
        self.compiled = core.compile_model(model, "CPU", config)
        self.request = self.compiled.create_infer_request()
        hint = config["INFERENCE_PRECISION_HINT"]
        self.detail = f"OpenVINO {ov.__version__.split('-')[0]} CPU, {hint}, {threads} threads, {source}"

    def predict(self, batch: np.ndarray) -> np.ndarray:
        self.request.infer({0: np.ascontiguousarray(batch, dtype=np.float32)})
        return np.array(self.request.get_output_tensor(0).data, dtype=np.float32)

    def bind(self, batch: np.ndarray) -> Callable[[], object]:
        feed = {0: np.ascontiguousarray(batch, dtype=np.float32)}
        return lambda: self.request.infer(feed)

    def sync(self) -> None:
        """infer() is synchronous."""


def preload(runtime: str, fmt: Format | None = None) -> None:
    """Import the runtime's libraries, so a row's memory figure counts the model and its buffers, not the
    code of torch / timm / onnxruntime / openvino (the same for every model); a runtime not named here:
    its format's run_modules."""
    modules = {
        "torch": ("torch", "timm", "kdedge.models"),
        "onnxruntime": ("onnxruntime",),
        "openvino": ("openvino",),
        "executorch": ("torch", "executorch.runtime"),
        "litert": ("ai_edge_litert.interpreter",),
        "ncnn": ("ncnn",),
        "mnn": ("MNN",),
    }
    for name in modules.get(runtime.removesuffix("-compile"), fmt.run_modules if fmt else ()):
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name)


def _torch_model(payload: dict[str, Any]):
    from kdedge.files.rundir import RunDir

    model, _ = RunDir(payload["run_path"]).load_model(payload["stage"])
    return model


def make_runner(payload: dict[str, Any]) -> Runner:
    """The runner a row's payload names (runtime, precision, device, threads, file or run_path + stage)."""
    runtime, precision, device, threads = (
        payload["runtime"],
        payload["precision"],
        payload["device"],
        payload["threads"],
    )
    if runtime in ("torch", "torch-compile"):
        if device == "cuda":
            import torch

            if not torch.cuda.is_available():
                raise Skip("no CUDA device")
        return TorchRunner(_torch_model(payload), device, precision, runtime == "torch-compile", threads)
    if runtime == "onnxruntime":
        provider = payload.get("provider") or device
        return OrtRunner(payload["file"], provider, threads)
    if runtime == "openvino":
        if device != "cpu":
            raise Skip("the OpenVINO runner runs on the CPU only")
        return OpenVinoRunner(payload["file"], precision, threads, payload["batch_size"])
    fmt = payload_format(payload)
    if fmt is not None and fmt.edge:
        return _edge_runner(payload, fmt)
    valid = ("torch", "torch-compile", *file_runtimes())
    raise Skip(f"unknown runtime '{runtime}' (valid: {', '.join(valid)})")


def payload_format(payload: dict[str, Any]) -> Format | None:
    """The format entry a row's payload carries (an edge file's: the parent's table entry, so a format
    added at run time runs in the child too), else the table's format of the row's runtime."""
    if payload.get("format"):
        return Format.from_dict(payload["format"])
    return runtime_format(payload["runtime"])


def _edge_runner(payload: dict[str, Any], fmt: Format) -> Runner:
    """An edge format's runner (its table entry names it); not installed / wrong platform -> Skip."""
    from kdedge.runtime.edge_runners import Unavailable, open_runner

    if payload["device"] != "cpu":
        raise Skip(f"the {payload['runtime']} runner runs on the CPU only here")
    try:
        runner = open_runner(payload["file"], payload["threads"], payload["batch_size"], fmt)
        if getattr(runner, "batch", payload["batch_size"]) != payload["batch_size"]:
            raise Unavailable(f"the file is fixed to batch {runner.batch}")
    except Unavailable as why:
        raise Skip(str(why)) from None
    return runner
