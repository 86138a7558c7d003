"""The types every data source returns (Split, DataBundle, DataSource) and what is done to them
afterwards: normalisation, resizing, validation split, class filters.

Images are held in memory as uint8 tensors (N, C, H, W) and indexed per batch. Loaders never download
into a folder the user pointed at; only the default cache (~/.cache/kdedge) is filled by torchvision's
own download, for users with internet.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from pydantic import BaseModel

from kdedge.errors import InputError

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


@dataclass(frozen=True)
class DataSource:
    """One registered data set. `load(root, may_download) -> DataBundle` at the native image size (load_data
    resizes); a source with `options` (a pydantic model of the recipe's data.* keys it reads, e.g. APTOS's
    data.split / data.cache_dir) is called `load(root, may_download, image_size, options)` and returns
    images of that size itself, pre-processed from its own disk cache."""

    load: Callable[..., DataBundle]
    options: type[BaseModel] | None = None
    takes_path: bool = False  # folder / csv: called load(image_size, options) with --data-root in options


def resolve_root(data_root: str | os.PathLike | None) -> tuple[Path, bool]:
    """(root, may_download): --data-root, else $KDEDGE_DATA, else the download cache."""
    chosen = data_root or os.environ.get("KDEDGE_DATA")
    if chosen:
        return Path(chosen).expanduser(), False
    return DEFAULT_CACHE, True


def download(name: str, root: Path, fetch) -> None:
    """torchvision's download, with its failure (offline, proxy, bad checksum) as one clear line."""
    try:
        fetch()
    except (OSError, RuntimeError) as error:  # URLError is an OSError; torchvision wraps some in RuntimeError
        reason = " ".join(str(error).split())[:160]
        raise InputError(
            f"could not download {name} to {root} ({reason}); point --data-root or KDEDGE_DATA "
            f"at a folder that already has it"
        ) from None


def resize_images(images: torch.Tensor, size: int) -> torch.Tensor:
    """(N, C, H, W) uint8 -> (N, C, size, size) uint8, antialiased bilinear, in chunks to bound memory."""
    chunks = [
        F.interpolate(c.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        for c in images.split(1024)
    ]
    return torch.cat(chunks).round().clamp(0, 255).to(torch.uint8)


def split_validation(bundle: DataBundle, val_size: int, seed: int) -> DataBundle:
    """Move a seeded random `val_size` images from train to a validation split."""
    if val_size <= 0:
        return bundle
    if val_size >= len(bundle.train):
        raise InputError(
            f"data.val_size: must be smaller than the {len(bundle.train)} training images (got {val_size})"
        )
    order = torch.randperm(len(bundle.train), generator=torch.Generator().manual_seed(seed))
    val, train = bundle.train.subset(order[:val_size]), bundle.train.subset(order[val_size:])
    return replace(bundle, val=val, train=train)


def filter_classes(split: Split, omit: list[int], keep: list[int] | None) -> Split:
    """Drop images of `omit` classes, or keep only `keep` classes (a transfer set with classes left out).
    Nothing to drop: the split itself (a copy would pull a memory-mapped set into RAM)."""
    if not omit and keep is None:
        return split
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
