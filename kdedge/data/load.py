"""Load a registered data set by name (the table is kdedge/data/__init__.py): resize to the recipe's image size,
hand a source its typed data.* options."""

from __future__ import annotations

from dataclasses import replace

from pydantic import ValidationError

from kdedge.data import DATASETS
from kdedge.data.types import DataBundle, DataSource, Split, resize_images, resolve_root
from kdedge.errors import InputError


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
