"""`kdedge init PATH --teacher M --student M`: look at a folder or CSV of images, write a recipe that runs.

It lists the files, decodes them once into the image cache (so the first `distill` starts training at
once), counts images per class and split, warns about tiny or very unbalanced classes and unreadable
files, measures mean/std on the training split, and writes a commented YAML recipe.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from statistics import median

import numpy as np
from PIL import Image

from kdedge.commands.options import InitOptions
from kdedge.data.load import load_data
from kdedge.data.types import DataBundle
from kdedge.errors import InputError
from kdedge.models import check_model_name, is_timm_name
from kdedge.ui.console import console, error_console

TINY_CLASS = 10  # fewer training images than this: a class the models can hardly learn
UNBALANCED = 10.0  # largest / smallest class above this: suggest a class-weighted loss
MAX_DEFAULT_SIZE = 224


def _warn(text: str) -> None:
    error_console.print(f"warning: {text}", markup=False, highlight=False, soft_wrap=True)


def guess_image_size(paths: list[Path]) -> int:
    """The median shorter side of up to 50 images (header only), capped at 224: small images stay small."""
    sides = []
    for path in paths[:: max(1, len(paths) // 50)][:50]:
        try:
            with Image.open(path) as image:
                sides.append(min(image.size))
        except (OSError, ValueError, SyntaxError):
            continue
    return int(min(MAX_DEFAULT_SIZE, median(sides))) if sides else MAX_DEFAULT_SIZE


def check_models(teacher: str, student: str) -> None:
    """Both names in the model registry (timm names included); a typo gets a did-you-mean."""
    for flag, name in (("--teacher", teacher), ("--student", student)):
        try:
            check_model_name(name)
        except ValueError as err:
            raise InputError(f"{flag}: {err}") from None


def _source(path: Path) -> str:
    if path.is_dir():
        return "folder"
    if path.suffix.lower() == ".csv" and path.is_file():
        return "csv"
    raise InputError(f"{path}: give a folder of class folders (PATH/<class>/<image>) or an existing .csv file")


def class_counts(bundle: DataBundle) -> dict[str, list[int]]:
    """split -> images per class (in class order)."""
    counts = {}
    for name, split in (("train", bundle.train), ("val", bundle.val), ("test", bundle.test)):
        labels = split.labels.numpy() if split is not None else np.zeros(0, dtype=np.int64)
        counts[name] = np.bincount(labels, minlength=bundle.num_classes).tolist()
    return counts


def _warnings(bundle: DataBundle, counts: dict[str, list[int]]) -> list[str]:
    notes = []
    pairs = zip(bundle.class_names, counts["train"], strict=True)
    tiny = [f"'{c}' ({n})" for c, n in pairs if n < TINY_CLASS]
    if tiny:
        notes.append(f"tiny classes (< {TINY_CLASS} training images): {', '.join(tiny[:8])}")
    smallest, largest = min(counts["train"]), max(counts["train"])
    if smallest and largest / smallest > UNBALANCED:
        notes.append(
            f"unbalanced classes: {largest} vs {smallest} training images; the recipe turns on class_weighted_loss"
        )
    if bundle.skipped:
        notes.append(
            f"{len(bundle.skipped)} unreadable files left out (e.g. {bundle.skipped[0][1]}); the "
            "recipe sets data.skip_bad_images: true"
        )
    return notes


def _stage(model: str, weighted: bool) -> str:
    lr = "0.001"
    return (
        f"  model: {model}\n  epochs: 10               # more epochs usually help; watch val accuracy in "
        f"RUN/metrics.jsonl\n  batch_size: 64\n  optimizer: adamw\n  lr: {lr}\n  weight_decay: 0.05\n"
        f"  schedule: cosine\n  warmup_epochs: 1\n  augment: none           # crop_flip for photos whose "
        f"mirror image is the same class\n"
        + ("  class_weighted_loss: true  # the classes are very unbalanced\n" if weighted else "")
        + (
            "  pretrained: false        # true: ImageNet weights from the Hugging Face hub (network)\n"
            if is_timm_name(model)
            else ""
        )
    )


def render_recipe(
    name: str,
    source: str,
    path: Path,
    bundle: DataBundle,
    size: int,
    counts: dict,
    extra: dict,
    teacher: str,
    student: str,
    weighted: bool,
) -> str:
    """The commented YAML text (hand-written so the comments survive)."""
    total = {split: sum(n) for split, n in counts.items()}
    per_class = ", ".join(f"{c} {n}" for c, n in zip(bundle.class_names, counts["train"], strict=True))
    lines = [
        f"# Written by `kdedge init {path}`; edit freely (docs/own-images.md explains each key).",
        f"# {bundle.num_classes} classes; train {total['train']} / val {total['val']} / test {total['test']} images.",
        f"# Training images per class: {per_class[:400]}",
        f"name: {name}",
        "seed: 0",
        "device: auto",
        "data:",
        f"  name: {source}",
        f"  path: {json.dumps(str(path))}",
        *[f"  {key}: {json.dumps(value)}" for key, value in extra.items()],
        f"  image_size: {size}           # every image is resized to {size}x{size} once and cached",
        f"  in_channels: {bundle.in_channels}           # images are converted to "
        f"{'grayscale' if bundle.in_channels == 1 else 'RGB'}",
        "  resize: center_crop     # or squash / pad (keep the whole image)",
        f"  mean: {[round(v, 4) for v in bundle.mean]}  # measured on the training split",
        f"  std: {[round(v, 4) for v in bundle.std]}",
    ]
    if bundle.skipped:
        lines.append("  skip_bad_images: true   # unreadable files left out, listed in RUN/bad_images.txt")
    lines += [
        "teacher:",
        _stage(teacher, weighted).rstrip(),
        "student:",
        _stage(student, weighted).rstrip(),
        "distillation:",
        "  loss: hinton",
        "  alpha: 0.5    # weight of the soft (teacher) loss",
        "  temperature: 4",
    ]
    return "\n".join(lines) + "\n"


def init_command(options: InitOptions) -> Path:
    """Inspect PATH, write the recipe to options.out (default ./<name>.yaml), print the next commands."""
    from kdedge.data.csvfile import CsvOptions, list_csv
    from kdedge.data.folder import list_folder
    from kdedge.files.atomic import atomic_write_text

    teacher, student, image_size, out = options.teacher, options.student, options.image_size, options.out
    check_models(teacher, student)
    path = options.path.expanduser().resolve()
    source = _source(path)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", path.stem if source == "csv" else path.name) or "my_images"
    out = out or Path(f"{name}.yaml")
    if out.exists() and not options.force:
        raise InputError(f"--out: {out} exists; choose another file or pass --force to overwrite it")
    if source == "folder":
        paths = list_folder(path, skip_bad=True).paths
        extra: dict = {}
    else:
        listing = list_csv(path, CsvOptions(skip_bad_images=True))
        with path.open(newline="", encoding="utf-8-sig") as handle:
            columns = next(csv.reader(handle))
        paths, extra = listing.paths, {"image_column": columns[0], "label_column": columns[1]}
    size = image_size or guess_image_size(paths)
    bundle = load_data(source, None, size, {"path": str(path), "skip_bad_images": True, **extra})
    counts = class_counts(bundle)
    notes = _warnings(bundle, counts)
    for note in notes:
        _warn(note)
    weighted = any(n.startswith("unbalanced") for n in notes)
    text = render_recipe(name, source, path, bundle, size, counts, extra, teacher, student, weighted)
    atomic_write_text(out, text)
    run = f"runs/{name}"
    console.print(
        f"recipe: {out} ({bundle.num_classes} classes, {len(bundle.train)} training images)",
        highlight=False,
        markup=False,
    )
    console.print("next:", highlight=False)
    for command in (f"kdedge distill {out} --out {run}", f"kdedge export {run}", f"kdedge bench {run}"):
        console.print(f"  {command}", highlight=False, markup=False)
    return out
