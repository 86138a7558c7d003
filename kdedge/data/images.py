"""The training DataBundle of a file-based source (folder, csv, APTOS): the set decoded into the image cache
(kdedge.data.imageset, torch-free) as torch views of its memory map, with the mean / std it is normalised by.
The torch-free parts are re-exported here for the sources that import them from this module.
"""

from __future__ import annotations

from pathlib import Path

import torch

from kdedge.data.imageset import (
    DEFAULT_RESIZE,
    DEFAULT_SIZE,
    IMAGE_SUFFIXES,
    SPLITS,
    DecodedSet,
    ImageSetOptions,
    Listing,
    SplitRule,
    channel_stats,
    decode_set,
    is_image_name,
    resolve_cache_dir,
    source_path,
    stratified_split,
)
from kdedge.data.types import DataBundle, Split
from kdedge.errors import InputError

__all__ = [
    "DEFAULT_RESIZE",
    "DEFAULT_SIZE",
    "IMAGE_SUFFIXES",
    "SPLITS",
    "DecodedSet",
    "ImageSetOptions",
    "Listing",
    "SplitRule",
    "build_bundle",
    "channel_stats",
    "decode_set",
    "is_image_name",
    "resolve_cache_dir",
    "source_path",
    "stratified_split",
]


def build_bundle(
    name: str,
    listing: Listing,
    opts: ImageSetOptions,
    image_size: int | None,
    source: Path,
    norm: tuple[tuple[float, ...], tuple[float, ...]] | None = None,
) -> DataBundle:
    """Decode (or reuse) the cache of `listing` and cut it into train / val / test views; mean / std: the
    recipe's, else `norm`, else measured on the training split."""
    decoded = decode_set(name, listing, opts, image_size, source)
    images = torch.from_numpy(decoded.images)  # a memory map: rows are read from disk when a batch needs them
    labels = torch.from_numpy(decoded.labels)
    splits = {
        split: Split(images[a:b], labels[a:b], tuple(decoded.ids[a:b])) if b > a else None
        for split, (a, b) in decoded.rows.items()
    }
    given = (opts.mean, opts.std) if opts.mean and opts.std else norm  # else measured on the training split
    mean, std = given or channel_stats(decoded.images[slice(*decoded.rows["train"])])
    if len(mean) != decoded.channels or len(std) != decoded.channels:
        raise InputError(f"data.mean / data.std: need {decoded.channels} values each (in_channels {decoded.channels})")
    return DataBundle(
        name,
        splits["train"],
        splits["test"],
        listing.class_names,
        tuple(mean),
        tuple(std),
        splits["val"],
        root=str(source),
        skipped=decoded.skipped,
    )
