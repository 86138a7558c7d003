"""PyTorch -> LiteRT `.tflite` (kdedge-distill[litert-convert]: litert-torch + its ai-edge-quantizer).

fp32: litert_torch.convert at the job's fixed batch size (litert-torch 0.10 cannot trace kdedge's
models with a dynamic batch: the Flatten's reshape needs concrete sizes), input kept NCHW float32.
fp16: ai-edge-quantizer's FLOAT_CASTING recipe (fp16 weights, fp32 activations: TFLite's "float16
quantisation"). int8: ai-edge-quantizer's static_wi8_ai8 recipe, full-integer: int8 weights and
activations, int8 input and output tensors (the runner quantises the input with the file's scale and
zero point), ranges calibrated on real training images.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch

from kdedge.export.edge_common import ConvertJob, converter_errors


def _fp32(job: ConvertJob, path: Path) -> None:
    import litert_torch

    example = (torch.randn(job.batch or 1, *job.chw),)
    litert_torch.convert(job.model, example).export(str(path))


def _calibration_batches(job: ConvertJob, signature: str, input_name: str) -> dict[str, list[dict]]:
    """The quantizer's calibration data: the real images in batches of the file's fixed size."""
    batch = job.batch or 1
    usable = len(job.calibration) - len(job.calibration) % batch
    return {
        signature: [
            {input_name: np.ascontiguousarray(job.calibration[i : i + batch], dtype=np.float32)}
            for i in range(0, usable, batch)
        ]
    }


def _quantize(job: ConvertJob, fp32: Path) -> None:
    """fp16 / int8 from the fp32 file, written to job.path."""
    from ai_edge_litert.interpreter import Interpreter
    from ai_edge_quantizer import qtyping, quantizer, recipe
    from ai_edge_quantizer.algorithm_manager import AlgorithmName

    qt = quantizer.Quantizer(str(fp32))
    if job.precision == "fp16":
        qt.add_weight_only_config(
            regex=".*",
            operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
            num_bits=16,
            algorithm_key=AlgorithmName.FLOAT_CASTING,
        )
        result = qt.quantize()
    else:
        qt.load_quantization_recipe(recipe.static_wi8_ai8())
        signatures = Interpreter(model_path=str(fp32)).get_signature_list()
        signature = next(iter(signatures))
        input_name = signatures[signature]["inputs"][0]
        result = qt.quantize(qt.calibrate(_calibration_batches(job, signature, input_name), num_threads=1))
    result.export_model(str(job.path), overwrite=True)


def convert(job: ConvertJob) -> None:
    """Write job.path: a fixed-batch .tflite of the model at job.precision."""
    with converter_errors("LiteRT (litert-torch)"):
        if job.precision == "fp32":
            _fp32(job, job.path)
            return
        with tempfile.TemporaryDirectory(dir=job.path.parent, prefix=".litert-") as folder:
            fp32 = Path(folder) / "fp32.tflite"
            _fp32(job, fp32)
            _quantize(job, fp32)
