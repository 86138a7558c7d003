"""Int8 settings: which onnxruntime int8 settings make ConvNeXt-T and Swin-T fastest on this CPU (batch 1, 224x224,
random weights, 5 classes, kdedge's exporter: torch.onnx dynamo, opset 20), every ratio measured in this run.

For each model: the fp32 file and one int8 file per setting are built (cached in --cache), then all of
them are timed round-robin in this one process: each round runs every session --repeats times and keeps
the median; a setting's speed-up is the median over rounds of (fp32 round median / its round median), so a
burst of load from other jobs hits fp32 and int8 alike. 1 intra-op thread by default (a shared 2-core
machine: a second thread mostly waits for the other jobs).

Accuracy proxy (random weights, no APTOS data): the int8 file against the fp32 file on --eval CIFAR-10 test
images resized to 224 (real photos; calibration uses CIFAR-10 TRAIN images), as top-1 agreement and as
rel. error = RMS(int8 logits - fp32 logits) / RMS(fp32 logits - their mean over the images), i.e. the
error relative to how much the logits vary between images. Without $KDEDGE_DATA's CIFAR-10, smoothed
random images are used for both.

Settings: kdedge's schemes (`kdedge export --int8-scheme NAME`, built by kdedge.export.convert.to_int8) and
a few other onnxruntime settings for comparison (built here):
  u8s8, u8s7, s8s8, u8s8-gemm, u8s7-gemm    kdedge.export.int8_schemes
  ort:qoperator       QOperator format (QLinearConv/QLinearMatMul/...), u8s8 per-channel, every operator
  ort:gemm-qout       Conv/MatMul/Gemm only but MatMul outputs quantised too (QLinearMatMul + DQ)
  ort:gemm-pertensor  u8s8-gemm with per-tensor weights
  ort:dynamic         quantize_dynamic on MatMul/Gemm, per-channel s8 weights (DynamicQuantizeMatMul)
  ort:u8s7-gemm-tanh  u8s7-gemm with every Gelu switched to its tanh approximation (FastGelu)

    .venv/bin/python bench/int8_settings.py [--models convnext_tiny,swin_tiny_patch4_window7_224]
        [--settings u8s8,u8s7-gemm,...] [--rounds 10] [--repeats 3] [--threads 1] [--cache DIR]
    # the AVX2-only kernels on an AVX-512 machine:
    .venv/bin/python bench/ort_avx2_copy.py /tmp/ort_avx2
    PYTHONPATH=/tmp/ort_avx2 .venv/bin/python bench/int8_settings.py
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from kdedge.data.aptos import IMAGENET_MEAN, IMAGENET_STD
from kdedge.export.convert import _Calibration, _inside, _quiet, export_fp32, to_int8
from kdedge.export.int8_schemes import GEMM_OPS, SCHEMES
from kdedge.models.builders import build_model

SIZE, CLASSES = 224, 5
EXTRA = ("ort:qoperator", "ort:gemm-qout", "ort:gemm-pertensor", "ort:dynamic", "ort:u8s7-gemm-tanh")
DEFAULT_SETTINGS = ",".join((*SCHEMES, *EXTRA))


def load_images(count: int, train: bool, seed: int) -> tuple[np.ndarray, str]:
    """(count, 3, 224, 224) float32 on the ImageNet-normalised scale, and where they came from."""
    folder = Path(os.environ.get("KDEDGE_DATA", "../shared/data")) / "cifar-10-batches-py"
    if folder.is_dir():
        from kdedge.data.cifar10 import _read_cifar_batch

        images, _ = _read_cifar_batch(folder / ("data_batch_1" if train else "test_batch"))
        chosen = torch.from_numpy(images[:count]).float() / 255
        source = f"CIFAR-10 {'train' if train else 'test'} images resized to {SIZE}"
    else:  # smooth random "photos": low-resolution noise upsampled
        rng = np.random.default_rng(seed)
        chosen = torch.from_numpy(rng.random((count, 3, 14, 14), dtype=np.float32))
        source = "smoothed random images (no CIFAR-10 under $KDEDGE_DATA)"
    resized = torch.nn.functional.interpolate(chosen, size=SIZE, mode="bilinear", align_corners=False)
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in (IMAGENET_MEAN, IMAGENET_STD))
    return ((resized - mean) / std).numpy().astype(np.float32), source


def build_fp32(name: str, folder: Path) -> Path:
    fp32 = folder / f"{name}.fp32.onnx"
    if not fp32.exists():
        torch.manual_seed(0)
        export_fp32(build_model(name, CLASSES, 3, SIZE).eval(), (3, SIZE, SIZE), fp32, opset=20)
    return fp32


def build_int8(setting: str, fp32: Path, calibration: np.ndarray, folder: Path) -> Path:
    """The int8 file of `setting` (cached by name: delete --cache after changing the calibration)."""
    target = folder / f"{fp32.name.split('.')[0]}.{setting.replace(':', '_')}.onnx"
    if target.exists():
        return target
    if setting in SCHEMES:
        to_int8(fp32, target, calibration, setting, folder)
    else:
        _build_other(setting, fp32, target, calibration, folder)
    return target


def _build_other(setting: str, fp32: Path, target: Path, calibration: np.ndarray, folder: Path) -> None:
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if setting == "ort:u8s7-gemm-tanh":
        to_int8(fp32, target, calibration, "u8s7-gemm", folder)
        model = onnx.load(str(target))
        for node in model.graph.node:
            if node.op_type == "Gelu":
                del node.attribute[:]
                node.attribute.append(onnx.helper.make_attribute("approximate", "tanh"))
        onnx.save(model, str(target))
        return
    prepared = folder / f"{fp32.stem}.ort-pre.onnx"  # not to_int8's temp name
    with _quiet(), _inside(folder):
        if not prepared.exists():
            quant_pre_process(str(fp32), str(prepared))
        if setting == "ort:dynamic":
            quantize_dynamic(
                str(prepared), str(target), op_types_to_quantize=["MatMul", "Gemm"], per_channel=True
            )  # s8 weights (QInt8, the default)
            return
        float_out = {"OpTypesToExcludeOutputQuantization": ["MatMul", "Gemm"]}
        options = {
            "ort:qoperator": {"quant_format": QuantFormat.QOperator},
            "ort:gemm-qout": {"op_types_to_quantize": list(GEMM_OPS)},
            "ort:gemm-pertensor": {
                "op_types_to_quantize": list(GEMM_OPS),
                "per_channel": False,
                "extra_options": float_out,
            },
        }[setting]
        common = {
            "quant_format": QuantFormat.QDQ,
            "per_channel": True,
            "activation_type": QuantType.QUInt8,
            "weight_type": QuantType.QInt8,
            "calibrate_method": CalibrationMethod.MinMax,
        }
        quantize_static(str(prepared), str(target), _Calibration(calibration), **(common | options))


def session(path: Path, threads: int) -> ort.InferenceSession:
    """The session kdedge bench uses (kdedge/bench/runners.py): sequential, ORT_ENABLE_ALL."""
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def logits(sess: ort.InferenceSession, images: np.ndarray) -> np.ndarray:
    return np.concatenate([sess.run(None, {"images": images[i : i + 1]})[0] for i in range(len(images))])


def median_ms(sess: ort.InferenceSession, image: np.ndarray, repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        sess.run(None, {"images": image})
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def cpu_line() -> str:
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), "?")
    flags = set(next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), []))
    isa = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8") if f in flags]
    patched = (Path(ort.__file__).parent / "KDEDGE_AVX2_DISPATCH").exists()
    dispatch = "AVX2 (patched copy, bench/ort_avx2_copy.py)" if patched else "as the CPU reports"
    return f"CPU {model} ({os.cpu_count()} logical), flags {' '.join(isa)}; MLAS dispatch: {dispatch}"


def measure(name: str, settings: list[str], args: argparse.Namespace, folder: Path) -> list[dict]:
    calibration, _ = load_images(args.calibration_images, train=True, seed=0)
    evaluation, _ = load_images(args.eval_images, train=False, seed=1)
    fp32 = build_fp32(name, folder)
    files = {"fp32": fp32}
    for setting in settings:
        started = time.perf_counter()
        files[setting] = build_int8(setting, fp32, calibration, folder)
        print(f"  {name} {setting}: {files[setting].name} ({time.perf_counter() - started:.0f} s)", flush=True)
    sessions = {key: session(path, args.threads) for key, path in files.items()}
    reference = logits(sessions["fp32"], evaluation)
    spread = np.sqrt(((reference - reference.mean(0)) ** 2).mean())
    accuracy = {}
    for key, sess in sessions.items():
        out = logits(sess, evaluation)
        accuracy[key] = (
            float((out.argmax(1) == reference.argmax(1)).mean()),
            float(np.sqrt(((out - reference) ** 2).mean()) / spread),
        )
    image = evaluation[:1]
    for sess in sessions.values():
        median_ms(sess, image, 2)  # warm-up
    rounds: dict[str, list[float]] = {key: [] for key in sessions}
    load_before = os.getloadavg()
    for _ in range(args.rounds):
        for key, sess in sessions.items():
            rounds[key].append(median_ms(sess, image, args.repeats))
    load_after = os.getloadavg()
    rows = []
    for key in settings:
        ratios = [f / q for f, q in zip(rounds["fp32"], rounds[key], strict=True)]
        rows.append(
            {
                "model": name,
                "setting": key,
                "fp32_ms": statistics.median(rounds["fp32"]),
                "int8_ms": statistics.median(rounds[key]),
                "ratio": statistics.median(ratios),
                "ratio_min": min(ratios),
                "ratio_max": max(ratios),
                "agreement": accuracy[key][0],
                "rel_error": accuracy[key][1],
                "classes": len(set(reference.argmax(1))),
                "size_mb": files[key].stat().st_size / 2**20,
                "load": f"{load_before[0]:.1f}->{load_after[0]:.1f}",
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="convnext_tiny,swin_tiny_patch4_window7_224")
    parser.add_argument("--settings", default=DEFAULT_SETTINGS)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3, help="runs per session per round")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--calibration-images", type=int, default=32)
    parser.add_argument("--eval-images", type=int, default=64)
    parser.add_argument("--cache", type=Path, help="keep the ONNX files here between runs (default: a temp folder)")
    args = parser.parse_args()
    settings = [s for s in args.settings.split(",") if s]
    unknown = [s for s in settings if s not in SCHEMES and s not in EXTRA]
    if unknown:
        parser.error(f"unknown setting(s) {unknown}; known: {DEFAULT_SETTINGS}")
    warnings.simplefilter("ignore")
    logging.getLogger().setLevel(logging.ERROR)
    _, source = load_images(1, train=False, seed=1)
    print(cpu_line())
    print(
        f"onnxruntime {ort.__version__}, batch 1, {SIZE}x{SIZE}, {args.threads} intra-op thread(s), "
        f"{args.rounds} rounds x {args.repeats} runs, {args.calibration_images} calibration / "
        f"{args.eval_images} eval images: {source}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.cache or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        rows = [row for name in args.models.split(",") for row in measure(name, settings, args, folder)]
    print(
        "\n| model | setting | fp32 ms | int8 ms | x vs fp32 (min..max of rounds) | top-1 agree | rel. error "
        "| size MB | load avg |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        print(
            f"| {r['model']} | {r['setting']} | {r['fp32_ms']:.1f} | {r['int8_ms']:.1f} "
            f"| **{r['ratio']:.2f}x** ({r['ratio_min']:.2f}..{r['ratio_max']:.2f}) "
            f"| {r['agreement']:.3f} ({r['classes']} classes) "
            f"| {r['rel_error']:.3f} | {r['size_mb']:.1f} | {r['load']} |"
        )


if __name__ == "__main__":
    main()
