"""PyTorch -> NCNN through pnnx (kdedge-distill[ncnn-convert]), as Ultralytics does.

The stage is traced with torch.jit.trace at batch 1 (pnnx reads TorchScript; ncnn has no batch dimension)
and handed to the `pnnx` binary that the pnnx wheel ships, which writes model.ncnn.param / model.ncnn.bin
into the job's folder (`student.fp32.ncnn/`). fp32 writes fp32 weights (pnnx fp16=0); fp16 writes fp16
weights (fp16=1, ncnn's own default). The binary runs in a subprocess: pnnx.export() would also import and
run the Python module pnnx generates, which kdedge does not need.

int8 is not offered: ncnn quantises with its own ncnn2table / ncnn2int8 tools, which no PyPI or Debian package
ships (building ncnn from source is needed), and pnnx cannot read a PyTorch-quantised TorchScript model.
A model with an op that pnnx cannot lower to ncnn fails with "not supported by pnnx/ncnn: <layer types>".
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import torch

from kdedge.export.edge_common import ConvertJob, ExportFailed, converter_errors
from kdedge.runtime.ncnn_runner import BIN, PARAM, unsupported_layers

TIMEOUT_S = 600  # pnnx on ConvNeXt-T takes ~20 s here; a hung binary must not hang the export


def _trace(job: ConvertJob, folder: Path) -> Path:
    """TorchScript of job.model traced on one random image (1, C, H, W); pnnx's input."""
    example = torch.randn(1, *job.chw)
    with torch.no_grad():
        traced = torch.jit.trace(job.model, example, check_trace=False)
    path = folder / "model.pt"
    traced.save(str(path))
    return path


def _pnnx_command(traced: Path, job: ConvertJob, scratch: Path) -> list[str]:
    """The pnnx call: ncnn files into job.path, pnnx's own side files (its IR, Python, ONNX) into scratch."""
    import pnnx

    shape = ",".join(str(d) for d in (1, *job.chw))
    side = {k: scratch / f"model.{k}" for k in ("pnnxparam", "pnnxbin", "pnnxpy", "pnnxonnx", "ncnnpy")}
    return [
        pnnx.EXEC_PATH,
        str(traced),
        f"inputshape=[{shape}]f32",
        f"fp16={int(job.precision == 'fp16')}",
        f"ncnnparam={Path(job.path) / PARAM}",
        f"ncnnbin={Path(job.path) / BIN}",
        *[f"{k}={v}" for k, v in side.items()],
    ]


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:200] if lines else "no output"


def convert(job: ConvertJob) -> None:
    """Write job.path (a folder): model.ncnn.param + model.ncnn.bin of job.model at job.precision."""
    if job.precision not in ("fp32", "fp16"):
        raise ExportFailed(f"ncnn writes fp32 and fp16 here, not {job.precision} (see kdedge/export/ncnn_convert.py)")
    Path(job.path).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="kdedge-pnnx-") as scratch:
        with converter_errors("pnnx (TorchScript trace)"):
            traced = _trace(job, Path(scratch))
        done = subprocess.run(
            _pnnx_command(traced, job, Path(scratch)), capture_output=True, text=True, timeout=TIMEOUT_S
        )
    param = Path(job.path) / PARAM
    if done.returncode != 0 or not param.is_file():
        raise ExportFailed(f"pnnx cannot convert this model (exit {done.returncode}): {_last_line(done.stderr)}")
    missing = unsupported_layers(param)
    if missing:
        raise ExportFailed(f"not supported by pnnx/ncnn: {', '.join(missing)}")
