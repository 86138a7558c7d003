"""`kdedge predict MODEL IMAGE...`: what an edge device runs. For .onnx onnxruntime + numpy + Pillow only,
for .tflite ai-edge-litert + numpy + Pillow only; .pte through ExecuTorch's runtime (which needs torch).

Never imports torch for .onnx / .tflite (tests check sys.modules): pre-processing comes from the file's
kdedge metadata (mode L/RGB, bilinear resize to input_size, /255, (x - mean) / std), exactly what
training used; an edge file's metadata is read from inside it or from its sidecar .json.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from kdedge.errors import InputError
from kdedge.runtime.formats import format_of_file
from kdedge.runtime.onnx_meta import ModelCard, model_card, open_session, run_logits

# Pillow's own default (89 MP) only warns, and refuses at twice that; 64 MP (8000 x 8000) is larger than any
# photo a phone takes while a bomb of 4 bytes per pixel stays under ~256 MB when decoded
MAX_IMAGE_PIXELS = 64_000_000


def load_image(path: Path, card: ModelCard) -> np.ndarray:
    """One image file -> (C, H, W) float32 on the 0..1 scale, converted and resized as the metadata says.

    Pillow's bilinear resize filters when shrinking, like the antialiased resize used on the training data.
    """
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise InputError(f"image not found: {path}")
    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS  # set here, not left to Pillow's default (which only warns)
    bombs = (Image.DecompressionBombError, Image.DecompressionBombWarning)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)  # above the limit: refused
            with Image.open(path) as image:
                if card.resize:  # a folder / csv / APTOS model: exactly the training cache's decoding
                    from kdedge.runtime.imaging import Decode, transform

                    spec = Decode(card.input_size[0], card.in_channels, card.resize)
                    return transform(image, spec).astype(np.float32) / 255.0
                image = image.convert(card.pil_mode)
                height, width = card.input_size
                if image.size != (width, height):
                    image = image.resize((width, height), Image.Resampling.BILINEAR)
                pixels = np.asarray(image, dtype=np.float32) / 255.0
    except bombs:
        raise InputError(
            f"{path}: refused: more than {MAX_IMAGE_PIXELS // 1_000_000} million pixels (a "
            "decompression bomb?); shrink the image first"
        ) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise InputError(f"{path}: not a readable image ({type(err).__name__}: {str(err)[:80]})") from None
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)


def preprocess(paths: list[Path], card: ModelCard) -> np.ndarray:
    """Image files -> normalised batch (N, C, H, W) float32."""
    return normalise(np.stack([load_image(p, card) for p in paths]), card)


def normalise(batch: np.ndarray, card: ModelCard) -> np.ndarray:
    """(N, C, H, W) float32 on the 0..1 scale -> (x - mean) / std with the file's mean and std."""
    mean = np.asarray(card.mean, np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(card.std, np.float32).reshape(1, -1, 1, 1)
    return (batch - mean) / std


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (N, K) logits, numerically stable."""
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
# what a run folder deploys, best first: the file `kdedge export --target` chose, else the fp32 student
# (the last two: the run's export/ folder itself was given)
RUN_MODELS = (
    "export/deploy/student.cpu-x86.onnx",
    "export/student.fp32.onnx",
    "deploy/student.cpu-x86.onnx",
    "student.fp32.onnx",
)


def resolve_model(path: str | Path) -> Path:
    """An ONNX file as given, or the one a run folder (or its export/ folder) deploys (RUN_MODELS)."""
    path = Path(path)
    if not path.is_dir() or format_of_file(str(path)):  # an .mlpackage or .ncnn is a folder, not a run
        return path
    for name in RUN_MODELS:
        if (path / name).is_file():
            return path / name
    raise InputError(
        f"{path}: a folder without an exported student (looked for "
        f"{', '.join(RUN_MODELS[:2])}); run `kdedge export {path}` first, or give an .onnx "
        "file"
    )


def expand_images(items: list[str | Path]) -> list[Path]:
    """Image files, folders (their image files, sorted) and glob patterns ('photos/*.jpg') -> files."""
    import glob

    files: list[Path] = []
    for item in map(str, items):
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise InputError(
                    f"{path}: a folder with no image files ({', '.join(IMAGE_SUFFIXES)}); "
                    "give image files, a folder of them or a pattern such as "
                    "'photos/*.jpg'"
                )
            files += found
        elif not path.exists() and glob.has_magic(item):
            found = sorted(Path(p) for p in glob.glob(item) if Path(p).is_file())
            if not found:
                raise InputError(f"{item}: no file matches this pattern")
            files += found
        else:
            files.append(path)
    return files


class Predictions(list):
    """predict_images' results (a list, one dict per image read, in order) and `skipped`: the images left out
    with skip_bad, [{"image": path, "error": why}, ...] (empty without skip_bad: a bad image is an error)."""

    def __init__(self) -> None:
        super().__init__()
        self.skipped: list[dict[str, str]] = []


def predict_images(
    model_path: str | Path, image_paths: list[str | Path], top_k: int = 1, chunk: int = 64, skip_bad: bool = False
) -> Predictions:
    """[{"image": path, "top": [{"index", "class", "probability"}, ...k]}] for each image, in order.

    model_path: an ONNX file or a run folder (resolve_model); image_paths: files, folders or globs
    (expand_images), read `chunk` at a time so a large folder never sits in memory at once. An unreadable
    image is an InputError, or with skip_bad left out and listed in the result's `skipped`."""
    if top_k < 1:
        raise InputError(f"--top-k: must be >= 1 (got {top_k})")
    card, logits_of = _open(resolve_model(model_path))
    paths = expand_images(image_paths)
    results = Predictions()
    for start in range(0, len(paths), chunk):
        part, batch = _read_chunk(paths[start : start + chunk], card, skip_bad, results.skipped)
        if not part:
            continue
        probabilities = softmax(logits_of(batch))
        k = min(top_k, probabilities.shape[1])
        for path, row in zip(part, probabilities, strict=True):
            order = np.argsort(-row, kind="stable")[:k]
            top = [{"index": int(i), "class": _name(card, int(i)), "probability": float(row[i])} for i in order]
            results.append({"image": str(path), "top": top})
    if results.skipped and not results:
        raise InputError(f"none of the {len(paths)} images is readable (e.g. {results.skipped[0]['error']})")
    return results


def _read_chunk(
    paths: list[Path], card: ModelCard, skip_bad: bool, skipped: list[dict[str, str]]
) -> tuple[list[Path], np.ndarray | None]:
    """(the paths read, their normalised batch (N, C, H, W) float32 or None); with skip_bad an unreadable
    image is appended to `skipped`, without it an InputError that says how to skip it."""
    kept, images = [], []
    for path in paths:
        try:
            images.append(load_image(path, card))
        except InputError as err:
            if not skip_bad:
                raise InputError(f"{err}; fix or remove it, or pass --skip-bad-images") from None
            skipped.append({"image": str(path), "error": str(err)})
        else:
            kept.append(path)
    return kept, normalise(np.stack(images), card) if images else None


def skipped_line(skipped: list[dict[str, str]], total: int, shown: int = 3) -> str:
    """'skipped 2 of 490 images (unreadable): a.png, b.png' (the first `shown` files, then '...')."""
    names = [entry["image"] for entry in skipped]
    listed = ", ".join(names[:shown]) + (", ..." if len(names) > shown else "")
    return f"skipped {len(names)} of {total} images (unreadable): {listed}"


def _open(path: Path):
    """(ModelCard, images (N, C, H, W) float32 -> logits (N, K)) for an exported file of any format."""
    fmt = format_of_file(str(path))
    if fmt is None or not fmt.edge:
        card, session = model_card(path), open_session(path)
        return card, lambda images: run_logits(session, images, batch_size=len(images) or 1)
    from kdedge.runtime.edge_meta import edge_card
    from kdedge.runtime.edge_runners import Unavailable, open_runner

    card = edge_card(path)
    try:
        runner = open_runner(path, threads=0)
    except Unavailable as why:
        raise InputError(f"{path}: cannot run here: {why}") from None
    return card, runner.predict


def _name(card: ModelCard, index: int) -> str:
    return card.class_names[index] if index < len(card.class_names) else str(index)
