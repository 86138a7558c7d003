"""What `kdedge distill` and `kdedge train` do: load the recipe, check everything that can be checked before
the run directory is touched, then run the stages with progress and print the summary table.

Imported lazily by kdedge.cli (never the other way round), so `kdedge --help` does not import torch; torch
itself is imported only once the recipe and the options are checked, so a typo is one line at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from kdedge.commands.options import BOTH_STAGES, DistillOptions
from kdedge.commands.teacher_reuse import teacher_notice
from kdedge.errors import InputError, Interrupted
from kdedge.files.fsguard import DiskFull, check_writable
from kdedge.losses import describe_feature_term, describe_weights
from kdedge.recipe import Recipe, load_recipe, parse_set, weight_paths
from kdedge.report.tensorboard import require_tensorboard
from kdedge.runtime.threads import busy_hint
from kdedge.runtime.threads import limit as limit_threads
from kdedge.train.stop import graceful_stop
from kdedge.ui.console import console, make_progress, print_table, summary_table, table_width

if TYPE_CHECKING:
    from kdedge.data.types import DataBundle


def default_out(name: str) -> Path:
    """runs/NAME, or runs/NAME-2, -3, ... when a finished run is already there (like Ultralytics' exp2)."""
    candidate, index = Path("runs") / name, 1
    while (candidate / "summary.json").exists():
        index += 1
        candidate = Path("runs") / f"{name}-{index}"
    return candidate


def distill_command(options: DistillOptions) -> Path:
    """Run the options' stages of a recipe (by path or packaged name, with `--set` overrides) into a run
    directory; a recipe with a sweep section run as `distill` becomes a sweep. Returns the run (or sweep)
    folder. `kdedge train` is this with stages ("teacher",). Everything that can be checked is checked
    before the run directory is touched."""
    recipe = load_recipe(options.recipe, parse_set(options.set_values()))  # a typo: said before torch loads
    _use_threads(options)
    if recipe.sweep is not None and options.stages == BOTH_STAGES:  # one teacher, a student per grid point
        return _run_as_sweep(recipe, options)
    if recipe.tensorboard:
        require_tensorboard()
    _check_options(recipe, options)
    from kdedge.train.devices import describe_device
    from kdedge.train.pipeline import check_stages_fit_data, prepare_data

    device_line = describe_device(recipe.device, recipe.amp)  # said once at start: where, in which precision
    run_path = options.resume or options.out or default_out(recipe.name)
    check_writable(run_path, "run directory")  # before any work
    bundle = prepare_data(recipe, options.data_root, run_path)  # bad data: said before the run directory is touched
    _check_before_writing(recipe, options, bundle.num_classes)
    check_stages_fit_data(recipe, bundle)  # Swin windows vs image size, a teacher run of another data set
    return _train(recipe, options, bundle, run_path, device_line)


def _use_threads(options: DistillOptions) -> None:
    """--threads N: N CPU threads here and in the processes this run starts. Without it, on a machine whose
    load average is already >= half its cores, one line says how to share (runtime.threads.busy_hint)."""
    if options.threads is not None:
        if options.threads < 1:
            raise InputError(f"--threads must be >= 1 (got {options.threads})")
        limit_threads(options.threads)
        return
    hint = busy_hint(options.threads)
    if hint and not options.quiet:
        console.print(hint, markup=False, highlight=False, soft_wrap=True)


def _train(recipe: Recipe, options: DistillOptions, bundle: DataBundle, run_path: Path, device_line: str) -> Path:
    """Open (or resume) the run directory, train the stages with progress, print the summary table."""
    from kdedge.train import distributed
    from kdedge.train.pipeline import run_recipe
    from kdedge.train.resume import Checkpointer, open_run

    resumed = options.resume is not None
    world = distributed.start(recipe.device)  # under torchrun: join the group; only rank 0 writes and prints
    quiet = options.quiet or not world.is_main
    run = open_run(run_path, recipe, options.force, resumed) if world.is_main else distributed.SilentRunDir(run_path)
    checkpointer = Checkpointer(run, recipe, options.checkpoint_minutes, resume=resumed)
    if not quiet:
        trains_teacher = "teacher" in options.stages and not resumed  # a resumed teacher is said by its state
        _print_header(recipe, run.path, device_line, len(bundle.train) if trains_teacher else None)
    try:
        with graceful_stop(not world.distributed), make_progress(quiet) as progress:
            summary = run_recipe(recipe, run, options.data_root, options.stages, progress, checkpointer, bundle)
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


def _run_as_sweep(recipe: Recipe, options: DistillOptions) -> Path:
    from kdedge.commands.sweep import run_sweep_recipe
    from kdedge.train import distributed

    if distributed.world_from_env().distributed:  # every rank would run every point into the same folders
        raise InputError(
            f"{options.recipe}: a recipe with a sweep section runs in one process, not under "
            "torchrun; torchrun one point instead (--set sweep= --set KEY=VALUE)"
        )
    folder = options.out or Path("runs") / recipe.name
    run_sweep_recipe(recipe, [], folder, options.data_root, 1, options.quiet)
    return folder


def _check_options(recipe: Recipe, options: DistillOptions) -> None:
    """Bad input that the recipe and the options alone show (no torch, no data): one InputError."""
    if options.stages == ("teacher",) and recipe.teacher is None:
        raise InputError(f"{options.recipe}: `kdedge train` trains the teacher, and this recipe has none; use distill")
    out, resume = options.out, options.resume
    if resume is not None and out is not None and out.resolve() != resume.resolve():
        raise InputError(f"--out {out} and --resume {resume}: a resumed run continues in its own directory")


def _check_before_writing(recipe: Recipe, options: DistillOptions, num_classes: int) -> None:
    """Bad input that is known once the data is loaded, before the run directory is touched: one InputError,
    nothing written."""
    if "student" in options.stages and recipe.student is not None:  # a bad transfer set / bias fix
        from kdedge.train.biasfix import check_transfer_set

        check_transfer_set(recipe, num_classes)


def _print_header(recipe: Recipe, run_path: Path, device_line: str, teacher_images: int | None) -> None:
    """Weights read, recipe -> run, alpha and T, the device; before a long or repeated teacher training,
    a note naming the `--set teacher.checkpoint=` that reuses an earlier one (teacher_images: the training
    images the teacher will see, None when no teacher is trained now)."""
    for key, path in weight_paths(recipe).items():  # relative ones are resolved against the recipe's dir
        console.print(f"{key}: {path}", markup=False, highlight=False, soft_wrap=True)
    d = recipe.distillation
    console.print(
        f"[bold]{recipe.name}[/] -> {run_path}  (distillation: loss={d.loss}, "
        f"{describe_weights(d.loss, d.soft_weight, d.temperature, d.loss_kwargs)}"
        f"{describe_feature_term(d.feature_loss, d.feature_weight, len(d.features))})",
        soft_wrap=True,
    )
    console.print(device_line, markup=False, highlight=False, soft_wrap=True)
    notice = teacher_notice(recipe, teacher_images, run_path) if teacher_images is not None else None
    if notice:
        console.print(notice, markup=False, highlight=False, soft_wrap=True)
