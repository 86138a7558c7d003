"""Write a run directory with seeded RANDOM (or briefly trained) student weights, so `kdedge export` /
`kdedge bench` can be measured on big architectures (ConvNeXt-T, Swin-T at 224x224) without days of CPU
training. The data set is real (it gives the test images and int8 calibration images); accuracy of a
random model is chance, which is what the export numbers then show.

    .venv/bin/python bench/random_run.py convnext_tiny --dataset cifar10 --image-size 224 \\
        --out runs/export_demo/convnext_tiny_224
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from kdedge.files.rundir import RunDir, data_info
from kdedge.models.weights import build_stage_model
from kdedge.recipe import validate_recipe
from kdedge.train.pipeline import prepare_data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--dataset", default="cifar10")
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--data-root", default=None, help="default $KDEDGE_DATA")
    args = parser.parse_args()
    recipe = validate_recipe(
        {
            "name": f"random-{args.model}",
            "seed": 0,
            "device": "cpu",
            "description": "random-weight student for export / bench measurements (not trained)",
            "data": {"name": args.dataset, "image_size": args.image_size},
            "student": {"model": args.model},
            "distillation": {"loss": "none"},
        }
    )
    bundle = prepare_data(recipe, args.data_root)
    torch.manual_seed(recipe.seed)
    model = build_stage_model(recipe.student, data_info(bundle)).eval()
    run = RunDir(args.out)
    args.out.mkdir(parents=True, exist_ok=True)
    run.write_recipe(recipe)
    run.update_summary("data", data_info(bundle))
    run.save_weights("student", model, recipe)
    run.update_summary("finished", True)
    print(f"{args.out}: {args.model}, random weights, {args.dataset} at {bundle.image_size} px")


if __name__ == "__main__":
    main()
