"""What `kdedge distill` and `kdedge train` do: load the recipe, check everything that can be checked before
the run directory is touched, then run the stages with progress and print the summary table.

Imported lazily by kdedge.cli (never the other way round), so `kdedge --help` does not import torch.
"""

from __future__ import annotations

from pathlib import Path

from kdedge.commands.teacher_reuse import teacher_notice
from kdedge.errors import InputError, Interrupted
from kdedge.files.fsguard import DiskFull, check_writable
from kdedge.losses import describe_weights
from kdedge.recipe import Recipe, load_recipe, parse_set, weight_paths
from kdedge.report.tensorboard import require_tensorboard
from kdedge.train import distributed
from kdedge.train.devices import describe_device
from kdedge.train.pipeline import check_stages_fit_data, prepare_data, run_recipe
from kdedge.train.resume import Checkpointer, open_run
from kdedge.train.stop import graceful_stop
from kdedge.ui.console import console, make_progress, print_table, summary_table, table_width

BOTH_STAGES = ("teacher", "student")


def default_out(name: str) -> Path:
    """runs/NAME, or runs/NAME-2, -3, ... when a finished run is already there (like Ultralytics' exp2)."""
    candidate, index = Path("runs") / name, 1
    while (candidate / "summary.json").exists():
        index += 1
        candidate = Path("runs") / f"{name}-{index}"
    return candidate


def distill_command(
    recipe_arg: str,
    overrides: list[str],
    out: Path | None,
    data_root: str | None,
    force: bool,
    quiet: bool,
    stages: tuple[str, ...],
    resume: Path | None = None,
    checkpoint_minutes: float = 30.0,
    tensorboard: bool = False,
) -> Path:
    """Run `stages` of a recipe (by path or packaged name, with `--set` overrides) into a run directory;
    a recipe with a sweep section run as `distill` becomes a sweep. Returns the run (or sweep) folder."""
    recipe = load_recipe(recipe_arg, parse_set([*overrides, *(["tensorboard=true"] if tensorboard else [])]))
    if recipe.sweep is not None and stages == BOTH_STAGES:  # one teacher, a student per grid point
        return _run_as_sweep(recipe, recipe_arg, out, data_root, quiet)
    if recipe.tensorboard:
        require_tensorboard()
    device_line = describe_device(recipe.device, recipe.amp)  # said once at start: where, in which precision
    run_path = resume or out or default_out(recipe.name)
    check_writable(run_path, "run directory")  # before any work
    bundle = prepare_data(recipe, data_root, run_path)  # bad data: said before the run directory is touched
    _check_before_writing(recipe, recipe_arg, stages, bundle.num_classes, out, resume)
    check_stages_fit_data(recipe, bundle)  # Swin windows vs image size, a teacher run of another data set
    world = distributed.start(recipe.device)  # under torchrun: join the group; only rank 0 writes and prints
    quiet = quiet or not world.is_main
    run = open_run(run_path, recipe, force, resume is not None) if world.is_main else distributed.SilentRunDir(run_path)
    checkpointer = Checkpointer(run, recipe, checkpoint_minutes, resume=resume is not None)
    if not quiet:
        trains_teacher = "teacher" in stages and resume is None  # a resumed teacher is said by its state
        _print_header(recipe, run.path, device_line, len(bundle.train) if trains_teacher else None)
    try:
        with graceful_stop(not world.distributed), make_progress(quiet) as progress:
            summary = run_recipe(recipe, run, data_root, stages, progress, checkpointer, bundle)
    except DiskFull as err:  # every file written so far is intact: free space and continue
        raise DiskFull(f"{err}; free space, then continue with --resume {run.path}", err.path) from None
    except KeyboardInterrupt:  # here, not in Typer (which exits 130 silently): say what to resume
        raise Interrupted(checkpointer.saved(), run.path) from None
    finally:
        run.release()
    if not quiet:
        width = table_width()
        title = f"{recipe.name}: test set of {summary['data']['dataset']}"
        print_table(summary_table(summary, title, width), width)
        console.print(f"run directory: {run.path}")
    return run.path


def _run_as_sweep(recipe: Recipe, recipe_arg: str, out: Path | None, data_root: str | None, quiet: bool) -> Path:
    from kdedge.commands.sweep import run_sweep_recipe

    if distributed.world_from_env().distributed:  # every rank would run every point into the same folders
        raise InputError(
            f"{recipe_arg}: a recipe with a sweep section runs in one process, not under "
            "torchrun; torchrun one point instead (--set sweep= --set KEY=VALUE)"
        )
    folder = out or Path("runs") / recipe.name
    run_sweep_recipe(recipe, [], folder, data_root, 1, quiet)
    return folder


def _check_before_writing(
    recipe: Recipe, recipe_arg: str, stages: tuple[str, ...], num_classes: int, out: Path | None, resume: Path | None
) -> None:
    """Bad input that is known before the run directory is touched: one InputError, nothing written."""
    if "student" in stages and recipe.student is not None:  # a bad transfer set / bias fix
        from kdedge.train.biasfix import check_transfer_set

        check_transfer_set(recipe, num_classes)
    if stages == ("teacher",) and recipe.teacher is None:
        raise InputError(f"{recipe_arg}: `kdedge train` trains the teacher, and this recipe has none; use distill")
    if resume is not None and out is not None and out.resolve() != resume.resolve():
        raise InputError(f"--out {out} and --resume {resume}: a resumed run continues in its own directory")


def _print_header(recipe: Recipe, run_path: Path, device_line: str, teacher_images: int | None) -> None:
    """Weights read, recipe -> run, alpha and T, the device; before a long or repeated teacher training,
    a note naming the `--set teacher.checkpoint=` that reuses an earlier one (teacher_images: the training
    images the teacher will see, None when no teacher is trained now)."""
    for key, path in weight_paths(recipe).items():  # relative ones are resolved against the recipe's dir
        console.print(f"{key}: {path}", markup=False, highlight=False, soft_wrap=True)
    d = recipe.distillation
    console.print(
        f"[bold]{recipe.name}[/] -> {run_path}  (distillation: loss={d.loss}, "
        f"{describe_weights(d.loss, d.soft_weight, d.temperature, d.loss_kwargs)})",
        soft_wrap=True,
    )
    console.print(device_line, markup=False, highlight=False, soft_wrap=True)
    notice = teacher_notice(recipe, teacher_images, run_path) if teacher_images is not None else None
    if notice:
        console.print(notice, markup=False, highlight=False, soft_wrap=True)
