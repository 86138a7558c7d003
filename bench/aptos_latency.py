"""APTOS edge question: CPU latency (onnxruntime, batch 1, 224x224, 5 classes) of the ConvNeXt-T teacher,
the Swin-T student and compact students, fp32 and int8, with every ratio measured in this one run.

Weights are random (latency does not depend on their values). int8 = onnxruntime static QDQ quantisation
(per-channel weights, activations calibrated on 8 normalised images). Models are timed round-robin for
`--rounds` rounds and each model's median over rounds is reported, so a burst of load from other jobs
on a shared machine hits every model alike instead of one of them.

    .venv/bin/python bench/aptos_latency.py [--models convnext_tiny,swin_tiny_patch4_window7_224,...]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from kdedge.models.builders import build_model, count_params

SIZE, CLASSES = 224, 5
DEFAULT_MODELS = "convnext_tiny,swin_tiny_patch4_window7_224,mobilenetv3_large_100,efficientnet_b0,resnet18"


class _Calibration(CalibrationDataReader):
    """8 images (1, 3, 224, 224) float32 on the normalised scale the models see."""

    def __init__(self) -> None:
        rng = np.random.default_rng(0)
        images = [rng.standard_normal((1, 3, SIZE, SIZE), dtype=np.float32) for _ in range(8)]
        self.batches = iter([{"images": image} for image in images])

    def get_next(self) -> dict | None:
        return next(self.batches, None)


def export(name: str, folder: Path) -> dict[str, Path]:
    """{'fp32': path, 'int8': path} for a random-weight model of `name`."""
    torch.manual_seed(0)
    model = build_model(name, CLASSES, 3, SIZE).eval()
    fp32 = folder / f"{name}.fp32.onnx"
    torch.onnx.export(
        model,
        (torch.randn(1, 3, SIZE, SIZE),),
        str(fp32),
        input_names=["images"],
        output_names=["logits"],
        dynamic_axes={"images": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    prepared, int8 = folder / f"{name}.prep.onnx", folder / f"{name}.int8.onnx"
    quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
    quantize_static(
        str(prepared),
        str(int8),
        _Calibration(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
    )
    return {"fp32": fp32, "int8": int8, "params": count_params(model)}


def session(path: Path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def time_once(sess: ort.InferenceSession, image: np.ndarray, repeats: int) -> float:
    """Median latency in ms of `repeats` single-image runs."""
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        sess.run(["logits"], {"images": image})
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=DEFAULT_MODELS)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=10, help="runs per model per round")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=DeprecationWarning)  # the TorchScript exporter's notice
    names = args.models.split(",")
    image = np.random.default_rng(1).standard_normal((1, 3, SIZE, SIZE), dtype=np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        files = {name: export(name, Path(tmp)) for name in names}
        sessions = {(n, p): session(files[n][p], args.threads) for n in names for p in ("fp32", "int8")}
        for sess in sessions.values():
            time_once(sess, image, 3)  # warm-up: allocations, kernel selection
        per_round: dict[tuple[str, str], list[float]] = {key: [] for key in sessions}
        for _ in range(args.rounds):
            for key, sess in sessions.items():
                per_round[key].append(time_once(sess, image, args.repeats))
        sizes = {(n, p): files[n][p].stat().st_size / 2**20 for n in names for p in ("fp32", "int8")}
    reference = statistics.median(per_round[(names[0], "fp32")])
    print(
        f"onnxruntime {ort.__version__}, CPU, batch 1, {SIZE}x{SIZE}, {args.threads} threads, "
        f"{args.rounds} rounds x {args.repeats} runs; speed-up vs {names[0]} fp32"
    )
    print("| model | params | precision | size MB | p50 ms | min..max of rounds | speed-up |")
    print("|---|---:|---|---:|---:|---:|---:|")
    for (name, precision), rounds in per_round.items():
        median = statistics.median(rounds)
        size_mb = sizes[(name, precision)]
        print(
            f"| {name} | {files[name]['params'] / 1e6:.1f}M | {precision} | {size_mb:.1f} | {median:.2f} | "
            f"{min(rounds):.2f}..{max(rounds):.2f} | {reference / median:.2f}x |"
        )


if __name__ == "__main__":
    main()
