"""Data sets by name. Each source is one module here (mnist, cifar10, aptos, retinamnist); this file registers
them explicitly, as timm's models/__init__.py does, and loads one by name (load_data).

Adding a data source: write kdedge/data/<source>.py with a `load(root, may_download) -> DataBundle`
(plus a pydantic options model if it reads data.* keys of its own), then add one DATASETS.add line below.
"""

from __future__ import annotations

from dataclasses import replace

from pydantic import ValidationError

from kdedge.data import aptos, cifar10, csvfile, folder, mnist, retinamnist
from kdedge.data.types import (
    DEFAULT_CACHE,
    DataBundle,
    DataSource,
    Split,
    filter_classes,
    normalize,
    resize_images,
    resolve_root,
    split_record,
    split_validation,
)
from kdedge.errors import InputError
from kdedge.registry import Registry

__all__ = [
    "DATASETS",
    "DEFAULT_CACHE",
    "DataBundle",
    "DataSource",
    "Split",
    "filter_classes",
    "load_data",
    "normalize",
    "split_record",
    "split_validation",
]

DATASETS: Registry[DataSource] = Registry("data set")
DATASETS.add("mnist", DataSource(mnist.load_mnist))
DATASETS.add("mnist_embedded", DataSource(mnist.load_mnist_embedded))
DATASETS.add("cifar10", DataSource(cifar10.load_cifar10))
DATASETS.add("aptos", DataSource(aptos.load_aptos, options=aptos.AptosOptions))
DATASETS.add("retinamnist", DataSource(retinamnist.load_retinamnist))
DATASETS.add("folder", DataSource(folder.load_folder, options=folder.ImageSetOptions, takes_path=True))
DATASETS.add("csv", DataSource(csvfile.load_csv, options=csvfile.CsvOptions, takes_path=True))


def load_data(
    name: str, data_root: str | None, image_size: int | None = None, options: dict | None = None
) -> DataBundle:
    """Load a registered data set; resize all splits once when image_size differs from the native size.

    Sources with an options model (large photos: APTOS) get image_size and their validated `options`
    (split, cache_dir) and return images of that size themselves, from their own disk cache."""
    source = DATASETS.get(name)
    options = dict(options or {})
    if source.takes_path:  # your own images: --data-root replaces data.path
        return source.load(image_size, _settings(source, name, options | {"data_root": data_root}))
    root, may_download = resolve_root(data_root)
    if source.options is not None:
        bundle = source.load(root, may_download, image_size, _settings(source, name, options))
        return replace(bundle, root=str(root))
    options.pop("run_dir", None)  # the image cache's fallback folder: only sources with a cache use it
    if options:
        users = ", ".join(n for n in DATASETS.names() if DATASETS.get(n).options is not None)
        raise InputError(f"data.{', data.'.join(options)}: not used by data set '{name}' (only by: {users})")
    bundle = replace(source.load(root, may_download), root=str(root))
    if image_size and image_size != bundle.image_size:
        resize = lambda s: None if s is None else Split(resize_images(s.images, image_size), s.labels)  # noqa: E731
        bundle = replace(bundle, train=resize(bundle.train), test=resize(bundle.test), val=resize(bundle.val))
    return bundle


def _settings(source: DataSource, name: str, options: dict):
    """The source's typed options; an unknown key or a bad value is one line naming data.<key>."""
    try:
        return source.options(**options)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        if first["type"] == "extra_forbidden":
            raise InputError(f"data.{where}: not used by data set '{name}'") from None
        raise InputError(f"data.{where}: {first['msg']} (data set '{name}')") from None
