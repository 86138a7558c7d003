"""`kdedge init PATH --teacher M --student M`: look at a folder or CSV of images, write a recipe that runs.

It lists the files, decodes them once into the image cache (so the first `distill` starts training at
once), counts images per class and split, warns about tiny or very unbalanced classes and unreadable
files, measures mean/std on the training split, and writes a commented YAML recipe. It imports no torch
(kdedge.data.listing and kdedge.data.imageset are torch-free), so it starts at once.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path
from statistics import median

from PIL import Image

from kdedge.commands.options import InitOptions
from kdedge.data.imageset import DecodedSet, Listing, channel_stats, decode_set
from kdedge.data.listing import CsvOptions, list_csv, list_folder
from kdedge.errors import InputError
from kdedge.models import check_model_name, is_timm_name
from kdedge.models.quantisation import INT8_FRIENDLY_STUDENTS, int8_trouble
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


def int8_warning(student: str) -> str | None:
    """What to know when the student's layers quantise badly (`kdedge export` writes int8 by default and
    refuses an int8 file that agrees with fp32 on fewer than 97 % of the test images); None otherwise."""
    layers = int8_trouble(student)
    if layers is None:
        return None
    *first, last = INT8_FRIENDLY_STUDENTS
    return (
        f"--student {student}: its {layers} layers quantise badly, so its int8 file may disagree with fp32 "
        f"(MobileNetV3: 71-76 % of test images); for an int8 target take {', '.join(first)} or {last}, "
        "for fp32 / fp16 it is fine"
    )


def _source(path: Path) -> str:
    if path.is_dir():
        return "folder"
    if path.suffix.lower() == ".csv" and path.is_file():
        return "csv"
    raise InputError(f"{path}: give a folder of class folders (PATH/<class>/<image>) or an existing .csv file")


def _warnings(decoded: DecodedSet, counts: dict[str, list[int]]) -> list[str]:
    notes = []
    pairs = zip(decoded.class_names, counts["train"], strict=True)
    tiny = [f"'{c}' ({n})" for c, n in pairs if n < TINY_CLASS]
    if tiny:
        notes.append(f"tiny classes (< {TINY_CLASS} training images): {', '.join(tiny[:8])}")
    smallest, largest = min(counts["train"]), max(counts["train"])
    if smallest and largest / smallest > UNBALANCED:
        notes.append(
            f"unbalanced classes: {largest} vs {smallest} training images; the recipe turns on class_weighted_loss"
        )
    if decoded.skipped:
        notes.append(
            f"{len(decoded.skipped)} unreadable files left out (e.g. {decoded.skipped[0][1]}); the "
            "recipe sets data.skip_bad_images: true"
        )
    return notes


def _stage(model: str, weighted: bool, comment: str = "") -> str:
    lr = "0.001"
    return (
        f"  model: {model}{comment}\n  epochs: 10               # more epochs usually help; watch val accuracy in "
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


@dataclass(frozen=True)
class Survey:
    """What init found: the decoded set, images per class and split, the training split's mean / std, the
    columns a CSV needs named (image_column, label_column, split_column), the warnings."""

    decoded: DecodedSet
    counts: dict[str, list[int]]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    extra: dict[str, str]
    notes: list[str]


def render_recipe(name: str, source: str, path: Path, size: int, survey: Survey, options: InitOptions) -> str:
    """The commented YAML text (hand-written so the comments survive)."""
    decoded, counts = survey.decoded, survey.counts
    total = {split: sum(n) for split, n in counts.items()}
    per_class = ", ".join(f"{c} {n}" for c, n in zip(decoded.class_names, counts["train"], strict=True))
    weighted = any(note.startswith("unbalanced") for note in survey.notes)
    lines = [
        f"# Written by `kdedge init {path}`; edit freely (docs/own-images.md explains each key).",
        f"# {len(decoded.class_names)} classes; train {total['train']} / val {total['val']} / test "
        f"{total['test']} images.",
        f"# Training images per class: {per_class[:400]}",
        f"name: {name}",
        "seed: 0",
        "device: auto",
        "data:",
        f"  name: {source}",
        f"  path: {json.dumps(str(path))}",
        *[f"  {key}: {json.dumps(value)}" for key, value in survey.extra.items()],
        f"  image_size: {size}           # every image is resized to {size}x{size} once and cached",
        f"  in_channels: {decoded.channels}           # images are converted to "
        f"{'grayscale' if decoded.channels == 1 else 'RGB'}",
        "  resize: center_crop     # or squash / pad (keep the whole image)",
        f"  mean: {[round(v, 4) for v in survey.mean]}  # measured on the training split",
        f"  std: {[round(v, 4) for v in survey.std]}",
    ]
    if decoded.skipped:
        lines.append("  skip_bad_images: true   # unreadable files left out, listed in RUN/bad_images.txt")
    lines += ["teacher:", _stage(options.teacher, weighted).rstrip(), "student:"]
    lines += [_stage(options.student, weighted, _int8_comment(options.student)).rstrip()]
    lines += ["distillation:", "  loss: hinton"]
    lines += ["  alpha: 0.5    # weight of the soft (teacher) loss", "  temperature: 4"]
    return "\n".join(lines) + "\n"


def _int8_comment(student: str) -> str:
    """The student's line comment: how its int8 file will fare (`kdedge export` writes int8 by default)."""
    layers = int8_trouble(student)
    if layers is not None:
        return f"   # {layers}: int8 may disagree with fp32; {INT8_FRIENDLY_STUDENTS[0]} quantises well"
    return "   # ReLU / ReLU6, no squeeze-excite: quantises well to int8" if student in INT8_FRIENDLY_STUDENTS else ""


def _listing(source: str, path: Path) -> tuple[Listing, dict[str, str]]:
    """The files (unreadable ones listed, not refused) and, for a CSV, the columns the recipe names: the
    first two, and a column called `split` (train / val / test) as the data's own split."""
    if source == "folder":
        return list_folder(path, skip_bad=True), {}
    with path.open(newline="", encoding="utf-8-sig") as handle:
        columns = next(csv.reader(handle), [])
    extra = {"image_column": columns[0], "label_column": columns[1]} if len(columns) >= 2 else {}
    split = next((c for c in columns[2:] if c.strip().lower() == "split"), None)
    extra |= {"split_column": split} if split else {}
    return list_csv(path, CsvOptions(skip_bad_images=True, **extra)), extra


def survey(source: str, path: Path, size: int, listing: Listing, extra: dict[str, str]) -> Survey:
    """Decode the images once into the image cache (the first `distill` reuses it), count them per class
    and split, measure mean / std on the training split, collect the warnings."""
    opts = CsvOptions(path=str(path), skip_bad_images=True, **extra)
    decoded = decode_set(source, listing, opts, size, path)
    counts = decoded.class_counts()
    mean, std = channel_stats(decoded.images[slice(*decoded.rows["train"])])
    return Survey(decoded, counts, mean, std, extra, _warnings(decoded, counts))


def init_command(options: InitOptions) -> Path:
    """Inspect PATH, write the recipe to options.out (default ./<name>.yaml), print the next commands.
    Imports no torch: it starts at once."""
    from kdedge.files.atomic import atomic_write_text

    check_models(options.teacher, options.student)
    if (note := int8_warning(options.student)) is not None:
        _warn(note)
    path = options.path.expanduser().resolve()
    source = _source(path)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", path.stem if source == "csv" else path.name) or "my_images"
    out = options.out or Path(f"{name}.yaml")
    if out.exists() and not options.force:
        raise InputError(f"--out: {out} exists; choose another file or pass --force to overwrite it")
    listing, extra = _listing(source, path)
    size = options.image_size or guess_image_size(listing.paths)
    found = survey(source, path, size, listing, extra)
    for note in found.notes:
        _warn(note)
    atomic_write_text(out, render_recipe(name, source, path, size, found, options))
    run = f"runs/{name}"
    training = found.decoded.rows["train"][1] - found.decoded.rows["train"][0]
    console.print(
        f"recipe: {out} ({len(found.decoded.class_names)} classes, {training} training images; teacher "
        f"{options.teacher}, student {options.student})",
        highlight=False,
        markup=False,
    )
    console.print("next:", highlight=False)
    for command in (f"kdedge distill {out} --out {run}", f"kdedge export {run}", f"kdedge bench {run}"):
        console.print(f"  {command}", highlight=False, markup=False)
    return out
