"""data.name: folder: PATH/<class>/<image> (kdedge splits it: seeded, stratified) or
PATH/train|val|test/<class>/<image> (the user's split; val optional). Class names: the sorted folder names.
The listing itself is kdedge.data.listing (torch-free).
"""

from __future__ import annotations

from kdedge.data.images import ImageSetOptions, build_bundle, source_path
from kdedge.data.listing import list_folder
from kdedge.data.types import DataBundle, DataSource

__all__ = ["ImageSetOptions", "list_folder", "load_folder"]


def load_folder(image_size: int | None, opts: ImageSetOptions) -> DataBundle:
    """data.name: folder (see the module docstring)."""
    root = source_path(opts, "folder", is_csv=False)
    return build_bundle("folder", list_folder(root, opts.skip_bad_images), opts, image_size, root)


SOURCE = DataSource(load_folder, options=ImageSetOptions, takes_path=True)
