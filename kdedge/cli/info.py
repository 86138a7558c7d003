"""The commands that train nothing and must start at once (no torch import): recipes, recipes show, formats,
init. Each calls one function of kdedge.commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kdedge.cli.params import RecipeArgument, WideOption
from kdedge.commands.options import InitOptions

recipes_app = typer.Typer(help="List or show the recipes shipped with kdedge.", invoke_without_command=True)


@recipes_app.callback()
def list_recipes(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable list.")] = False,
) -> None:
    """List the packaged recipes, one line each."""
    if ctx.invoked_subcommand is not None:
        return
    from kdedge.commands.recipes import list_command

    list_command(as_json)


@recipes_app.command("show")
def show_recipe(name: RecipeArgument) -> None:
    """Print a recipe so you can copy and edit it."""
    from kdedge.commands.recipes import show_command

    show_command(name)


def formats(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable list.")] = False,
    wide: WideOption = False,
) -> None:
    """The export formats: suffix, precisions, runtimes, and whether converter and runtime are installed."""
    from kdedge.commands.formats import formats_command

    formats_command(as_json, wide)


def init(
    path: Annotated[
        Path,
        typer.Argument(
            help="A folder PATH/<class>/<image> (or PATH/train|val|test/...) or a CSV file of image,label rows."
        ),
    ],
    teacher: Annotated[
        str,
        typer.Option(
            "--teacher",
            help="Teacher model: one of kdedge's own (mlp, small_cnn, cifar_resnet18, ...) or any name "
            "timm.list_models() knows (resnet34, convnext_tiny, vit_tiny_patch16_224, ...); `kdedge distill` "
            "checks that it takes the image size (patches, windows, minimum size) before it writes anything.",
        ),
    ] = "resnet18",
    student: Annotated[
        str,
        typer.Option(
            "--student",
            help="Student model (the same names). The default quantises well to int8 (ReLU6, no squeeze-excite); "
            "a student with hard-swish or squeeze-excite (MobileNetV3, EfficientNet) gets a warning.",
        ),
    ] = "mobilenetv2_100",
    image_size: Annotated[
        int | None, typer.Option("--image-size", min=1, help="Side in pixels (default: the images' median).")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Recipe file (default ./<name>.yaml).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite --out.")] = False,
) -> None:
    """Look at your images and write a recipe that runs; prints the next three commands."""
    from kdedge import api

    api.init(InitOptions(path, teacher, student, image_size, out, force))
