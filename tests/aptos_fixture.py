"""Build a small APTOS 2019 data set in Kaggle's layout from generated images (no real photos: Kaggle's
rules forbid redistributing them).

    ROOT/aptos2019-blindness-detection/train.csv            id_code,diagnosis
    ROOT/aptos2019-blindness-detection/train_images/<id>.png
    ROOT/aptos2019-blindness-detection/test.csv             id_code (unlabelled, as on Kaggle)

Each image is a "retina": an orange-red disc on a noisy black background, of varying size and aspect
ratio (wide black side borders; some discs cut at top and bottom like real photos), with 2 * grade + 1
dark-red "lesions", so the grade is learnable. Class counts follow APTOS's imbalance.

    python tests/aptos_fixture.py ROOT --count 60 [--seed 0]
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

FOLDER = "aptos2019-blindness-detection"
APTOS_CLASS_SHARE = (0.49, 0.10, 0.27, 0.05, 0.09)  # 1805/370/999/193/295 of 3,662


def grades_for(count: int, rng: np.random.Generator) -> list[int]:
    """`count` grades with APTOS's class shares, every grade present at least twice, shuffled."""
    per_class = [max(2, round(share * count)) for share in APTOS_CLASS_SHARE]
    per_class[0] += count - sum(per_class)  # the majority class absorbs rounding
    grades = [grade for grade, n in enumerate(per_class) for _ in range(n)]
    return [int(g) for g in rng.permutation(grades)]


def fundus_image(grade: int, rng: np.random.Generator, max_side: int = 240) -> Image.Image:
    """A synthetic fundus photo (RGB, width >= height) whose number of lesions encodes `grade`."""
    height = int(rng.integers(max_side // 2, max_side * 3 // 4))
    width = int(height * rng.uniform(1.0, 1.5))
    noise = rng.integers(0, 6, (height, width, 3), dtype=np.uint8)  # sensor noise stays under BLACK_LEVEL
    image = Image.fromarray(noise, "RGB")
    draw = ImageDraw.Draw(image)
    radius = height * rng.uniform(0.42, 0.6)  # > 0.5: the disc is cut at top and bottom
    cx, cy = width / 2 + rng.uniform(-0.05, 0.05) * width, height / 2
    colour = tuple(int(c) for c in rng.integers((170, 70, 20), (230, 120, 50)))
    draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=colour)
    for _ in range(2 * grade + 1):
        angle, dist = rng.uniform(0, 2 * np.pi), rng.uniform(0, 0.6) * radius
        x, y, r = cx + dist * np.cos(angle), cy + dist * np.sin(angle), radius * rng.uniform(0.06, 0.1)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=(90, 10, 10))
    return image


def make_aptos(root: Path, count: int = 60, seed: int = 0, max_side: int = 240) -> Path:
    """Write the layout under root; returns the Kaggle folder (root / FOLDER)."""
    rng = np.random.default_rng(seed)
    folder = Path(root) / FOLDER
    (folder / "train_images").mkdir(parents=True, exist_ok=True)
    rows = []
    for index, grade in enumerate(grades_for(count, rng)):
        id_code = f"{rng.integers(16**8):08x}{index:04x}"  # Kaggle ids are 12 hex digits; unique by index
        fundus_image(grade, rng, max_side).save(folder / "train_images" / f"{id_code}.png")
        rows.append((id_code, grade))
    with (folder / "train.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows([("id_code", "diagnosis"), *rows])
    (folder / "test.csv").write_text("id_code\n")
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--count", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-side", type=int, default=240)
    args = parser.parse_args()
    folder = make_aptos(args.root, args.count, args.seed, args.max_side)
    print(f"wrote {args.count} images + train.csv to {folder}")


if __name__ == "__main__":
    main()
