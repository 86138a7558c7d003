"""The OpenVINO runner's IR cache (kdedge.bench.ov_cache): converted once, reused across rows and processes,
re-converted when the ONNX file changes, atomic, and a folder it cannot write to only costs the cache.
Tiny ONNX files made here (no data set needed); skipped without openvino."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from bench_helpers import MNIST_META, export_onnx

pytest.importorskip("openvino", reason="openvino is not installed (pip install 'kdedge-distill[openvino]')")

from kdedge.bench import ov_cache  # noqa: E402 - after the skip: its runner needs openvino
from kdedge.bench.runners import OpenVinoRunner  # noqa: E402

BATCH = 4


def _onnx(path: Path, seed: int) -> tuple[Path, torch.nn.Module]:
    """An fp32 MNIST-shaped MLP (1x28x28 -> 10) with seeded weights, exported with a dynamic batch."""
    torch.manual_seed(seed)
    nn = torch.nn
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 10))
    return export_onnx(model, path, (1, 28, 28), MNIST_META), model.eval()


def _cache_files(folder: Path) -> dict[str, tuple[int, int]]:
    """{name: (inode, mtime_ns)} of the IR files: a rewrite (rename of a new file) changes the inode."""
    cache = folder / ov_cache.CACHE_DIR
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in sorted(cache.iterdir())}


def _batch() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((BATCH, 1, 28, 28), dtype=np.float32)


def _expected(model: torch.nn.Module) -> np.ndarray:
    with torch.inference_mode():
        return model(torch.from_numpy(_batch())).numpy()


def test_second_runner_reuses_the_ir_without_rewriting_it(tmp_path: Path):
    path, model = _onnx(tmp_path / "student.fp32.onnx", seed=0)
    first = OpenVinoRunner(str(path), "fp32", threads=1, batch_size=BATCH)
    assert first.detail.endswith("IR converted"), first.detail
    files = _cache_files(tmp_path)
    assert sorted(files) == sorted(ov_cache.ir_path(path).with_suffix(s).name for s in (".bin", ".xml"))
    assert not [p for p in (tmp_path / ov_cache.CACHE_DIR).iterdir() if p.name.startswith(".tmp-")]
    second = OpenVinoRunner(str(path), "fp32", threads=1, batch_size=BATCH)
    assert second.detail.endswith("IR cached"), second.detail
    assert _cache_files(tmp_path) == files  # same inodes and mtimes: not rewritten
    # the IR is numerically the ONNX file (weights kept f32, not save_model's default fp16)
    np.testing.assert_allclose(second.predict(_batch()), _expected(model), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(first.predict(_batch()), second.predict(_batch()))


def test_a_changed_onnx_is_reconverted_and_the_old_ir_dropped(tmp_path: Path):
    path, _ = _onnx(tmp_path / "student.fp32.onnx", seed=0)
    OpenVinoRunner(str(path), "fp32", threads=1, batch_size=BATCH)
    old = _cache_files(tmp_path)
    stat = path.stat()
    path, model = _onnx(path, seed=1)  # same name and size, new weights
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # even with the old mtime: keyed by content
    assert path.stat().st_size == stat.st_size
    runner = OpenVinoRunner(str(path), "fp32", threads=1, batch_size=BATCH)
    assert runner.detail.endswith("IR converted"), runner.detail
    new = _cache_files(tmp_path)
    assert len(new) == 2 and not set(new) & set(old)  # new key, old IR deleted
    np.testing.assert_allclose(runner.predict(_batch()), _expected(model), rtol=1e-5, atol=1e-5)


def test_ir_of_other_files_in_the_folder_is_kept(tmp_path: Path):
    a, _ = _onnx(tmp_path / "student.onnx", seed=0)
    b, _ = _onnx(tmp_path / "student-0123456789abcdef.onnx", seed=1)  # a name that looks like a key
    OpenVinoRunner(str(a), "fp32", threads=1, batch_size=BATCH)
    OpenVinoRunner(str(b), "fp32", threads=1, batch_size=BATCH)
    _onnx(a, seed=2)
    OpenVinoRunner(str(a), "fp32", threads=1, batch_size=BATCH)
    names = _cache_files(tmp_path)
    assert ov_cache.ir_path(b).name in names and ov_cache.ir_path(a).name in names and len(names) == 4


def test_a_damaged_cache_entry_is_rebuilt(tmp_path: Path):
    path, model = _onnx(tmp_path / "m.onnx", seed=0)
    OpenVinoRunner(str(path), "fp32", threads=1, batch_size=BATCH)
    ov_cache.ir_path(path).write_text("<not an IR")
    runner = OpenVinoRunner(str(path), "fp32", threads=1, batch_size=BATCH)
    assert runner.detail.endswith("IR converted")
    np.testing.assert_allclose(runner.predict(_batch()), _expected(model), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("how", ["cache path is a file", "permission denied"])
def test_unwritable_folder_reads_the_onnx_directly(tmp_path: Path, monkeypatch, how: str):
    """The tests run as root here, where chmod does not stop writes: block the folder with a file, or make
    the temp folder creation fail the way a read-only directory does."""
    path, model = _onnx(tmp_path / "m.onnx", seed=0)
    if how == "cache path is a file":
        (tmp_path / ov_cache.CACHE_DIR).write_text("")
    else:

        def denied(*args, **kwargs):
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(ov_cache.tempfile, "mkdtemp", denied)
    runner = OpenVinoRunner(str(path), "fp32", threads=1, batch_size=BATCH)
    assert "ONNX read (IR cache not writable: " in runner.detail, runner.detail
    np.testing.assert_allclose(runner.predict(_batch()), _expected(model), rtol=1e-5, atol=1e-5)
    if how == "permission denied":
        assert "Permission denied" in runner.detail
        assert not list((tmp_path / ov_cache.CACHE_DIR).iterdir())  # nothing half-written


def test_bench_rows_in_separate_processes_share_the_ir(tmp_path: Path):
    """Two isolated bench rows (fresh child processes, as `kdedge bench` runs them): one converts, one
    reuses."""
    from kdedge.bench.isolate import run_isolated

    path, _ = _onnx(tmp_path / "student.fp32.onnx", seed=0)
    payload = {
        "runtime": "openvino",
        "precision": "fp32",
        "device": "cpu",
        "batch_size": 1,
        "threads": 1,
        "seconds": 0.05,
        "warmup_s": 0.01,
        "input_shape": [1, 28, 28],
        "file": str(path),
    }
    first = run_isolated(payload, timeout_s=120)
    files = _cache_files(tmp_path)
    second = run_isolated(payload | {"batch_size": 8}, timeout_s=120)
    assert first["status"] == "ok" and first["detail"].endswith("IR converted"), first
    assert second["status"] == "ok" and second["detail"].endswith("IR cached"), second
    assert _cache_files(tmp_path) == files
