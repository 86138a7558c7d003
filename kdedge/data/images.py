"""What the file-based sources share (folder, csv, APTOS): typed data.* options, the file listing, the
seeded stratified split and the bundle cut from the image cache (kdedge.data.imagecache).

Rows of the cache are written train, then val, then test, so each split is a contiguous slice of the
memory map (a view, never a copy): training never holds the whole set in memory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from kdedge.data import imagecache
from kdedge.data.types import DataBundle, Split
from kdedge.errors import InputError
from kdedge.runtime.imaging import Decode

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".pgm", ".ppm")
SPLITS = ("train", "val", "test")
DEFAULT_SIZE = 224
DEFAULT_RESIZE = {"folder": "center_crop", "csv": "center_crop", "aptos": "retina_crop"}  # data.resize unset


class SplitRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    seed: int = 0
    val: Annotated[float, Field(ge=0, lt=1)] = 0.1
    test: Annotated[float, Field(gt=0, lt=1)] = 0.2


class ImageSetOptions(BaseModel):
    """data.* keys a file-based source reads (typed; anything else is refused by name)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    path: str | None = None
    in_channels: Literal[1, 3] | None = None  # None: inferred (all gray -> 1, all colour -> 3, mixed: error)
    resize: Literal["center_crop", "squash", "pad", "retina_crop"] = DEFAULT_RESIZE["folder"]
    mean: list[float] | None = None
    std: list[float] | None = None
    split: SplitRule | None = None
    cache_dir: str | None = None
    skip_bad_images: bool = False
    run_dir: str | None = None  # where the cache falls back to when cache_dir is not writable
    data_root: str | None = None  # --data-root: replaces data.path (a run's data moved)


@dataclass
class Listing:
    """Files and labels in split order. paths/ids/labels: (N,); bounds: {split: (start, stop)} rows when
    the user split the data, else None (kdedge splits it); bad: files skipped before decoding."""

    paths: list[Path]
    ids: list[str]
    labels: np.ndarray
    class_names: tuple[str, ...]
    bounds: dict[str, tuple[int, int]] | None = None
    bad: list[tuple[str, str]] | None = None


def is_image_name(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def stratified_split(ids: list[str], labels: np.ndarray, num_classes: int, rule: SplitRule) -> dict[str, np.ndarray]:
    """Indices per split: within each class, ids sorted then shuffled by rule.seed; the first
    round(n * test) go to test, the next round(n * val) to val. Depends only on the (id, label) set."""
    rng = np.random.default_rng(rule.seed)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in SPLITS}
    by_id = np.argsort(np.asarray(ids))
    for label in range(num_classes):
        members = rng.permutation(by_id[labels[by_id] == label])
        n_test, n_val = int(len(members) * rule.test + 0.5), int(len(members) * rule.val + 0.5)
        parts["test"].append(members[:n_test])
        parts["val"].append(members[n_test : n_test + n_val])
        parts["train"].append(members[n_test + n_val :])
    return {name: np.sort(np.concatenate(chunks)) for name, chunks in parts.items()}


def resolve_cache_dir(cache_dir: str | None) -> Path:
    """data.cache_dir, else $KDEDGE_CACHE, else ~/.cache/kdedge; never the (often read-only) data folder."""
    chosen = cache_dir or os.environ.get("KDEDGE_CACHE")
    return Path(chosen).expanduser() if chosen else imagecache.DEFAULT_CACHE / "images"


def _split_order(listing: Listing, rule: SplitRule | None) -> tuple[np.ndarray, dict[str, tuple[int, int]]]:
    """Row order (train, val, test; each sorted by id) and each split's (start, stop) in it."""
    if listing.bounds is not None:
        if rule is not None:
            raise InputError("data.split: the folder has its own train/test folders; remove data.split")
        return np.arange(len(listing.paths)), {s: listing.bounds.get(s, (0, 0)) for s in SPLITS}
    index = stratified_split(listing.ids, listing.labels, len(listing.class_names), rule or SplitRule())
    order, bounds = [], {}
    for name in SPLITS:
        chosen = sorted(index[name].tolist(), key=lambda i: listing.ids[i])
        bounds[name] = (len(order), len(order) + len(chosen))
        order += chosen
    return np.asarray(order, dtype=np.int64), bounds


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean / std on the 0..1 scale of (N, C, H, W) uint8, in chunks (bounded memory)."""
    total = torch.zeros(images.shape[1], dtype=torch.float64)
    squares, count = torch.zeros_like(total), 0
    for chunk in images.split(512):
        values = chunk.to(torch.float64).div_(255.0).transpose(0, 1).reshape(images.shape[1], -1)
        total += values.sum(1)
        squares += values.square().sum(1)
        count += values.shape[1]
    mean = total / max(count, 1)
    std = (squares / max(count, 1) - mean.square()).clamp_min(1e-12).sqrt()
    return tuple(round(float(v), 4) for v in mean), tuple(round(max(float(v), 1e-3), 4) for v in std)


def build_bundle(
    name: str,
    listing: Listing,
    opts: ImageSetOptions,
    image_size: int | None,
    source: Path,
    norm: tuple[tuple[float, ...], tuple[float, ...]] | None = None,
) -> DataBundle:
    """Decode (or reuse) the cache of `listing` and cut it into train / val / test views."""
    order, bounds = _split_order(listing, opts.split)
    if bounds["train"][0] == bounds["train"][1] or bounds["test"][0] == bounds["test"][1]:
        raise InputError(
            f"data: the split of {len(order)} images of {source} leaves train or test empty; "
            "add images or change data.split"
        )
    paths = [listing.paths[i] for i in order]
    fallback = Path(opts.run_dir) / "cache" if opts.run_dir else None
    what = "APTOS data cache" if name == "aptos" else "image cache"
    folder = imagecache.usable_cache_dir(resolve_cache_dir(opts.cache_dir), fallback, what)
    memo = imagecache.channels_memo(folder, name, source, paths)
    channels = opts.in_channels or imagecache.infer_channels(paths, memo)
    spec = Decode(image_size or DEFAULT_SIZE, channels, opts.resize)
    cached = imagecache.load_cached(paths, spec, folder, tag=name, source=source, skip_bad=opts.skip_bad_images)
    images = torch.from_numpy(cached.images)  # a memory map: rows are read from disk when a batch needs them
    kept_rows = np.zeros(len(order), dtype=bool)
    kept_rows[cached.kept] = True
    rows = np.cumsum(np.concatenate([[0], kept_rows]))  # rows[i]: kept rows before position i
    labels = torch.from_numpy(listing.labels[order][cached.kept])
    ids = [listing.ids[i] for i in order[cached.kept]]
    splits = {}
    for split, (start, stop) in bounds.items():
        a, b = int(rows[start]), int(rows[stop])
        splits[split] = Split(images[a:b], labels[a:b], tuple(ids[a:b])) if b > a else None
    if splits["train"] is None or splits["test"] is None:
        raise InputError(f"data: every image of the train or test split of {source} was unreadable")
    given = (opts.mean, opts.std) if opts.mean and opts.std else norm  # else measured on the training split
    mean, std = given or channel_stats(splits["train"].images)
    if len(mean) != channels or len(std) != channels:
        raise InputError(f"data.mean / data.std: need {channels} values each (in_channels {channels})")
    skipped = tuple((listing.bad or []) + cached.bad)
    return DataBundle(
        name,
        splits["train"],
        splits["test"],
        listing.class_names,
        tuple(mean),
        tuple(std),
        splits["val"],
        root=str(source),
        skipped=skipped,
    )


def source_path(opts: ImageSetOptions, source: str, is_csv: bool) -> Path:
    """data.path, or --data-root in its place (for a CSV: the same file name inside that folder)."""
    if opts.data_root:
        chosen = Path(opts.data_root).expanduser()
        if is_csv and chosen.is_dir() and opts.path:
            chosen = chosen / Path(opts.path).name
        return chosen.resolve()
    if not opts.path:
        kind = "CSV file" if is_csv else "folder of class folders"
        raise InputError(f"data.path: data set '{source}' needs data.path (a {kind})")
    return Path(opts.path).expanduser().resolve()
