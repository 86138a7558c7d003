"""Decoding one image file the way training saw it: any format and mode, EXIF orientation applied,
converted to 1 or 3 channels, resized to S x S (center_crop, squash, pad or retina_crop) -> uint8 (C, S, S).

Torch-free on purpose (numpy + Pillow): the image cache (kdedge.data.imagecache) decodes training images
with it, and `kdedge predict` decodes a user's photo with exactly the same steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

PREPROCESS_VERSION = 2  # bump whenever transform's output changes: old cache files stop matching
BLACK_LEVEL = 10  # retina crop: gray level <= this is border (JPEG-ish noise of a few levels there)
MIN_BRIGHT_FRACTION = 0.01  # a row/column belongs to the retina when >= 1% of it is brighter than that
RESIZE_MODES = ("center_crop", "squash", "pad", "retina_crop")
MAX_PIXELS = 200_000_000  # large medical scans are fine; a decompression bomb (more) is refused
UNREADABLE = (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError)


@dataclass(frozen=True)
class Decode:
    """How a file becomes a (channels, size, size) uint8 array. resize: center_crop (shorter side to
    size, centre cut), squash (stretch), pad (longer side to size, black bars), retina_crop (cut the
    black border around a fundus photo, pad square, resize)."""

    size: int
    channels: int
    resize: str = "center_crop"

    def describe(self) -> str:
        constants = f"{BLACK_LEVEL}|{MIN_BRIGHT_FRACTION}"
        return f"v{PREPROCESS_VERSION}|{self.size}|{self.channels}|{self.resize}|{constants}"


def _to_mode(image: Image.Image, channels: int) -> Image.Image:
    """Any Pillow mode -> 'L' or 'RGB': 16-bit scaled (not clipped), alpha dropped onto black."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or values.max() > 255 else 255.0
        image = Image.fromarray(np.clip(values * 255.0 / top + 0.5, 0, 255).astype(np.uint8), "L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        image = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        image.alpha_composite(rgba)
    return image.convert("L" if channels == 1 else "RGB")


def _retina_box(image: Image.Image) -> tuple[int, int, int, int] | None:
    """Bounding box of the non-black part (found on a reduced copy: same box, 10-100x faster)."""
    gray = image.convert("L")
    factor = max(1, max(gray.size) // 512)
    bright = np.asarray(gray.reduce(factor) if factor > 1 else gray) > BLACK_LEVEL
    rows = np.flatnonzero(bright.mean(1) >= MIN_BRIGHT_FRACTION)
    cols = np.flatnonzero(bright.mean(0) >= MIN_BRIGHT_FRACTION)
    if not len(rows) or not len(cols):  # an all-black image keeps its full frame
        return None
    width, height = image.size
    return (
        int(cols[0]) * factor,
        int(rows[0]) * factor,
        min((int(cols[-1]) + 1) * factor, width),
        min((int(rows[-1]) + 1) * factor, height),
    )


def _pad_square(image: Image.Image) -> Image.Image:
    side = max(image.size)
    square = Image.new(image.mode, (side, side))  # black bars: a round retina stays round
    square.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
    return square


def transform(image: Image.Image, spec: Decode) -> np.ndarray:
    """PIL image of any size/mode (EXIF orientation applied) -> (channels, size, size) uint8."""
    image = _to_mode(ImageOps.exif_transpose(image), spec.channels)
    if spec.resize == "retina_crop":
        box = _retina_box(image)
        image = _pad_square(image.crop(box) if box else image)
    elif spec.resize == "pad":
        image = _pad_square(image)
    elif spec.resize == "center_crop":
        side = min(image.size)
        left, top = (image.width - side) // 2, (image.height - side) // 2
        image = image.crop((left, top, left + side, top + side))
    if image.size != (spec.size, spec.size):
        image = image.resize((spec.size, spec.size), Image.Resampling.BICUBIC, reducing_gap=3.0)
    pixels = np.asarray(image)
    return (pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)).copy()


def decode_file(job: tuple[Path, Decode]) -> np.ndarray | str:
    """One file -> (C, S, S) uint8, or the one-line reason it could not be read (runs in a worker)."""
    path, spec = job
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS  # per call: a worker process starts with Pillow's default
    try:
        with Image.open(path) as image:
            return transform(image, spec)
    except UNREADABLE as err:
        reason = str(err).splitlines()[0][:100] if str(err) else type(err).__name__
        return f"{path}: not a readable image ({type(err).__name__}: {reason})"


def image_kind(path: Path) -> str:
    """'gray', 'colour' or 'bad' from the file header only (no pixel decoding; runs in a worker)."""
    try:
        with Image.open(path) as image:
            mode = image.mode
            if mode == "P":  # a palette of grays is still gray
                palette = np.asarray(image.getpalette() or [0, 0, 0]).reshape(-1, 3)
                return "gray" if (palette == palette[:, :1]).all() else "colour"
            return "gray" if mode in ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F") else "colour"
    except UNREADABLE:
        return "bad"
