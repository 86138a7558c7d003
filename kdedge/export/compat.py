"""`kdedge check FILE.onnx`: which runtimes that consume ONNX files load this one and agree with onnxruntime
on real test images (kdedge.runtime.consumers: onnxruntime, OpenVINO, OpenCV DNN, tract).

Each consumer runs in its own child process (a crash is a "refused" row, not a dead kdedge). onnxruntime is
the reference: kdedge's export has already checked it against PyTorch. A consumer "agrees" when its top-1
agrees with onnxruntime's on at least `min_agreement` of the images (the export's int8 bound, 0.97), and
"DIFFERS" otherwise: a file it runs without a word but computes differently (OpenCV on the MobileNetV3
student before kdedge dropped HardSigmoid's default beta: 3 % agreement).
"""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from kdedge.bench.isolate import describe_failure
from kdedge.errors import InputError
from kdedge.files.child import child_env, python_module
from kdedge.runtime.consumers import CONSUMERS

MIN_AGREEMENT = 0.97  # the export's min_top1_agreement default
TIMEOUT_S = 300


@dataclass
class ConsumerRow:
    """One runtime's verdict on one file. status: agrees | DIFFERS | refused | not installed."""

    runtime: str
    version: str
    status: str
    agreement: float | None = None  # top-1 agreement with onnxruntime on the images
    max_abs_diff: float | None = None  # max |logits - onnxruntime's|
    note: str = ""  # the refusal's error line, or the install hint

    def as_dict(self) -> dict:
        return asdict(self)


def _child(name: str, model: Path, images_npy: Path, folder: Path) -> tuple[np.ndarray | None, str]:
    """(logits, "") from consumer `name` in a child process, or (None, its one-line refusal)."""
    out = folder / f"{name}.npy"
    command = python_module("kdedge.runtime.consumers", name, str(model), str(images_npy), str(out))
    env = child_env() | {"OMP_NUM_THREADS": "1"}
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S, env=env)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {TIMEOUT_S} s"
    if proc.returncode == 3:  # the runtime raised: its own first line is the last line on stderr
        lines = [line.strip() for line in proc.stderr.splitlines() if line.strip()]
        return None, lines[-1] if lines else "refused without a message"
    if proc.returncode != 0 or not out.is_file():
        return None, describe_failure(proc.returncode, proc.stderr)
    return np.load(out), ""


def _row(name: str, logits: np.ndarray | None, note: str, reference: np.ndarray | None, bound: float) -> ConsumerRow:
    consumer = CONSUMERS[name]
    if logits is None:
        return ConsumerRow(name, consumer.version(), "refused", note=note)
    if reference is None or logits.shape != reference.shape:
        shape = "no onnxruntime reference" if reference is None else f"logits {logits.shape} vs {reference.shape}"
        return ConsumerRow(name, consumer.version(), "DIFFERS", note=shape)
    agreement = float((logits.argmax(1) == reference.argmax(1)).mean())
    status = "agrees" if agreement >= bound else "DIFFERS"
    diff = float(np.abs(logits - reference).max())
    return ConsumerRow(name, consumer.version(), status, agreement, diff)


def check_consumers(path: Path, images: np.ndarray, min_agreement: float = MIN_AGREEMENT) -> list[ConsumerRow]:
    """One row per consumer of the ONNX file `path` on `images` (N, C, H, W) float32 normalised, in the
    order of kdedge.runtime.consumers.CONSUMERS; absent runtimes are "not installed" with their pip line."""
    if not Path(path).is_file() or Path(path).suffix.lower() != ".onnx":
        raise InputError(f"{path}: `kdedge check` takes an .onnx file (got no such file)")
    results: dict[str, tuple[np.ndarray | None, str]] = {}
    with tempfile.TemporaryDirectory(prefix="kdedge-check-") as folder:
        images_npy = Path(folder) / "images.npy"
        np.save(images_npy, np.ascontiguousarray(images, dtype=np.float32))
        for name, consumer in CONSUMERS.items():
            if consumer.installed():
                results[name] = _child(name, Path(path).resolve(), images_npy, Path(folder))
    reference = results.get("onnxruntime", (None, ""))[0]
    rows = []
    for name, consumer in CONSUMERS.items():
        if name not in results:
            rows.append(ConsumerRow(name, "-", "not installed", note=consumer.pip_hint()))
        else:
            rows.append(_row(name, *results[name], reference, min_agreement))
    return rows


def run_of(path: Path) -> Path | None:
    """The run folder a file was exported into (RUN/export/x.onnx or RUN/export/deploy/x.onnx), or None."""
    for parent in Path(path).resolve().parents[:3]:
        if (parent / "recipe.yaml").is_file() and (parent / "summary.json").is_file():
            return parent
    return None


def test_images(path: Path, images: list[Path] | None, data_root: str | None, limit: int) -> tuple[np.ndarray, str]:
    """((N, C, H, W) float32 normalised, where they came from): the given image files decoded as the file's
    metadata says, else the first `limit` test images of the run the file was exported from."""
    if images:
        from kdedge.runtime.onnx_meta import model_card
        from kdedge.runtime.predict import expand_images, preprocess

        files = expand_images(images)[:limit]
        return preprocess(files, model_card(path)), f"{len(files)} image files"
    run_path = run_of(path)
    if run_path is None:
        raise InputError(
            f"{path}: not inside a run's export/ folder, so kdedge has no test images for it; "
            "give some with --images DIR"
        )
    from kdedge.export.options import load_eval_data, resolve_settings
    from kdedge.files.rundir import RunDir, remembered_data_root

    run = RunDir(run_path)
    recipe = run.read_recipe()
    settings = resolve_settings(recipe, {"limit": limit})
    data = load_eval_data(recipe, remembered_data_root(run.read_summary(), data_root), settings, False)
    return data.test_images, f"the first {len(data.test_images)} test images of {recipe.data.name} ({run_path.name})"
