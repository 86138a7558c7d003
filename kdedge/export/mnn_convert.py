"""PyTorch -> MNN (kdedge-distill[mnn]): the stage is exported to ONNX exactly as `kdedge export` writes it
(kdedge.export.convert: torch.onnx dynamo, then tidy_onnx), and MNN's converter turns that file into a .mnn.

The converter is called as the C++ extension `_tools.mnnconvert(argv)` that the MNN wheel ships, not as the
`mnnconvert` console script: that script imports MNN.tools.utils.log, which runs `pip install -U
aliyun-log-python-sdk` through os.system with whatever `pip` comes first on PATH (on 2026-12-06 here: the
system Python's, not the venv's) and then sends a usage record (machine id, model id, arguments) to a
remote log service. A converter must not install packages or report usage behind the user's back.

fp16: `--fp16` stores the weights as fp16 (half the file); MNN computes in fp32 after widening them.
int8 (mnnquant, also through the logger script) is not offered here.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from kdedge.errors import RuntimeFailure
from kdedge.export.convert import export_fp32, tidy_onnx
from kdedge.export.edge_common import ConvertJob, ExportFailed, converter_errors

OPSET = 18  # the lowest opset kdedge exports (recipe export.opset: 18..23); MNN 3.6.1 converts it


def convert(job: ConvertJob) -> None:
    """Write job.path: job.model as an MNN file, fp32 or fp16 weights per job.precision."""
    if job.precision not in ("fp32", "fp16"):
        raise ExportFailed(f"MNN writes fp32 and fp16 here, not {job.precision}")
    with tempfile.TemporaryDirectory(prefix="kdedge-mnn-") as scratch:
        onnx_file = Path(scratch) / "model.onnx"
        try:
            export_fp32(job.model, job.chw, onnx_file, OPSET)
        except RuntimeFailure as err:  # the ONNX step failed: the MNN file was never converted
            raise ExportFailed(str(err)) from None
        tidy_onnx(onnx_file)
        with converter_errors("MNN"):
            import _tools  # MNN's converter extension (see the module docstring for why not `mnnconvert`)

            argv = ["mnnconvert", "-f", "ONNX", "--modelFile", str(onnx_file), "--MNNModel", str(job.path)]
            _tools.mnnconvert(argv + ["--bizCode", "kdedge"] + (["--fp16"] if job.precision == "fp16" else []))
    if not Path(job.path).is_file():
        raise ExportFailed("MNN's converter wrote no file (see `mnnconvert` for its messages)")
