"""CIFAR-10 from ROOT/cifar-10-batches-py, read with a restricted unpickler (no code runs)."""

from __future__ import annotations

import pickle  # noqa: S403 - only for CIFAR's own batch files; see _read_cifar_batch
from pathlib import Path

import numpy as np
import torch

from kdedge.data.types import DataBundle, DataSource, Split, download
from kdedge.errors import InputError


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 python batch -> (images (N, 3, 32, 32) uint8, labels (N,) int64).

    The format is a pickle of plain lists/arrays; a restricted unpickler refuses every class
    except numpy's array reconstruction, so a hostile file cannot run code.
    """

    class _ArraysOnly(pickle.Unpickler):
        ALLOWED = {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("numpy.core.multiarray", "scalar"),
            ("numpy._core.multiarray", "scalar"),
        }

        def find_class(self, module: str, name: str):
            if (module, name) not in self.ALLOWED:
                raise InputError(f"{path}: refusing to load '{module}.{name}' from a CIFAR batch file")
            return super().find_class(module, name)

    with path.open("rb") as handle:
        try:
            batch = _ArraysOnly(handle, encoding="bytes").load()
        except (pickle.UnpicklingError, EOFError, ValueError) as err:
            raise InputError(f"{path}: not a CIFAR-10 batch file ({err})") from None
    batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
    images = np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
    return images, np.asarray(batch["labels"], dtype=np.int64)


CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def load_cifar10(root: Path, may_download: bool) -> DataBundle:
    """CIFAR-10 from ROOT/cifar-10-batches-py (read directly: works on subsets that torchvision's md5
    check rejects)."""
    folder = root / "cifar-10-batches-py"
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    missing = [n for n in names if not (folder / n).exists()]
    if missing and may_download and not folder.exists():
        import torchvision

        download("CIFAR-10", root, lambda: torchvision.datasets.CIFAR10(root, train=True, download=True))
        missing = [n for n in names if not (folder / n).exists()]
    if missing:
        raise InputError(
            f"CIFAR-10 root {folder} is missing {', '.join(missing)}; expected data_batch_1..5 "
            "and test_batch (empty batches are fine); point --data-root or KDEDGE_DATA at it"
        )
    parts = [_read_cifar_batch(folder / n) for n in names]
    train_x = np.concatenate([p[0] for p in parts[:5]])
    train_y = np.concatenate([p[1] for p in parts[:5]])
    split = lambda x, y: Split(torch.from_numpy(x), torch.from_numpy(y))  # noqa: E731
    return DataBundle(
        "cifar10",
        split(train_x, train_y),
        split(*parts[5]),
        CIFAR10_CLASSES,
        (0.4914, 0.4822, 0.4465),
        (0.2470, 0.2435, 0.2616),
    )


SOURCE = DataSource(load_cifar10)
