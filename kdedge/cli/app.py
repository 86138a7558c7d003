"""The `kdedge` Typer app: options and help only; each command calls one function of kdedge.commands.<name>.
Nothing imports this module."""

from __future__ import annotations

import os
import re
import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer

from kdedge import __version__
from kdedge.cli.completion import recipe_names, run_folders, runs_and_onnx
from kdedge.errors import Diverged, Interrupted, KdedgeError
from kdedge.runtime.formats import FORMATS, file_runtimes
from kdedge.ui.console import console, error_console, say

FORMAT_NAMES = tuple(FORMATS)  # the format table (kdedge.runtime.formats) names what export and bench offer
RUNTIME_NAMES = ("torch", *file_runtimes())

try:  # typer >= 0.20 vendors its own click; older typer uses click itself
    from typer._click.exceptions import UsageError
except ImportError:  # pragma: no cover
    from click.exceptions import UsageError

# rich_markup_mode=None: help text prints as written ("kdedge-distill[tensorboard]" would lose its
# brackets to rich markup) and flags get no "<bool>" placeholder
app = typer.Typer(
    add_completion=True,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="Distill large image classifiers into small ones for edge devices.",
)
# TAB completes packaged recipe names and .yaml files, run folders and .onnx files (kdedge.cli.completion)
RecipeArgument = Annotated[
    str, typer.Argument(help="Recipe file or packaged recipe name.", autocompletion=recipe_names)
]
recipes_app = typer.Typer(help="List or show the recipes shipped with kdedge.", invoke_without_command=True)
app.add_typer(recipes_app, name="recipes")

SetOption = Annotated[
    list[str],
    typer.Option(
        "--set",
        help="Override recipe keys: --set a.b=value c=value ... (several pairs after one --set, or one --set each).",
    ),
]
OutOption = Annotated[Path | None, typer.Option("--out", help="Run directory (default runs/<recipe name>).")]
DataRootOption = Annotated[
    str | None,
    typer.Option(
        "--data-root",
        help="Data folder (default: the run's own, else $KDEDGE_DATA, else download to "
        "~/.cache/kdedge); for data.name folder/csv it replaces data.path.",
    ),
]
ForceOption = Annotated[bool, typer.Option("--force", help="Overwrite a finished run in --out.")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or tables.")]
WideOption = Annotated[
    bool,
    typer.Option(
        "--wide", help="Every column, however wide the table gets (by default columns are hidden to fit the terminal)."
    ),
]
TensorBoardOption = Annotated[
    bool,
    typer.Option(
        "--tensorboard",
        help="Also write TensorBoard events into the run directory (needs kdedge-distill[tensorboard]).",
    ),
]
ResumeOption = Annotated[
    Path | None, typer.Option("--resume", help="Continue this killed run from its last checkpoint.")
]
SkipBadOption = Annotated[
    bool,
    typer.Option("--skip-bad-images", help="Leave unreadable images out (a warning, a count, RUN/bad_images.txt)."),
]
CheckpointMinutesOption = Annotated[
    float,
    typer.Option(
        "--checkpoint-minutes", min=0, help="Also save training state every N minutes inside an epoch (0: off)."
    ),
]


def _version(value: bool) -> None:
    if value:
        console.print(f"kdedge {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
) -> None:
    if debug:
        os.environ["KDEDGE_DEBUG"] = "1"


def _with_skip_bad_images(set_: list[str], skip_bad_images: bool) -> list[str]:
    """`--skip-bad-images` is the recipe key data.skip_bad_images, set like any other `--set`."""
    return [*set_, *(["data.skip_bad_images=true"] if skip_bad_images else [])]


@app.command()
def distill(
    recipe: RecipeArgument,
    set_: SetOption = [],  # noqa: B006 - typer reads the default, never mutates it
    out: OutOption = None,
    data_root: DataRootOption = None,
    force: ForceOption = False,
    quiet: QuietOption = False,
    resume: ResumeOption = None,
    checkpoint_minutes: CheckpointMinutesOption = 30.0,
    tensorboard: TensorBoardOption = False,
    skip_bad_images: SkipBadOption = False,
) -> None:
    """Train the teacher (unless the recipe gives a checkpoint), then distill the student."""
    from kdedge import api

    set_ = _with_skip_bad_images(set_, skip_bad_images)
    api.distill(
        recipe,
        set_,
        out,
        data_root=data_root,
        force=force,
        quiet=quiet,
        resume=resume,
        checkpoint_minutes=checkpoint_minutes,
        tensorboard=tensorboard,
    )


@app.command()
def train(
    recipe: RecipeArgument,
    set_: SetOption = [],  # noqa: B006
    out: OutOption = None,
    data_root: DataRootOption = None,
    force: ForceOption = False,
    quiet: QuietOption = False,
    resume: ResumeOption = None,
    checkpoint_minutes: CheckpointMinutesOption = 30.0,
    tensorboard: TensorBoardOption = False,
    skip_bad_images: SkipBadOption = False,
) -> None:
    """Train the recipe's teacher only."""
    from kdedge import api

    set_ = _with_skip_bad_images(set_, skip_bad_images)
    api.train(
        recipe,
        set_,
        out,
        data_root=data_root,
        force=force,
        quiet=quiet,
        resume=resume,
        checkpoint_minutes=checkpoint_minutes,
        tensorboard=tensorboard,
    )


@app.command()
def init(
    path: Annotated[
        Path,
        typer.Argument(
            help="A folder PATH/<class>/<image> (or PATH/train|val|test/...) or a CSV file of image,label rows."
        ),
    ],
    teacher: Annotated[str, typer.Option("--teacher", help="Teacher model (a registered or timm name).")],
    student: Annotated[str, typer.Option("--student", help="Student model.")],
    image_size: Annotated[
        int | None, typer.Option("--image-size", min=1, help="Side in pixels (default: the images' median).")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Recipe file (default ./<name>.yaml).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite --out.")] = False,
) -> None:
    """Look at your images and write a recipe that runs; prints the next three commands."""
    from kdedge.commands.init import init_command

    init_command(path, teacher, student, image_size, out, force)


@app.command()
def sweep(
    recipe: RecipeArgument,
    grid: Annotated[list[str], typer.Option("--grid", help="KEY=V1,V2,... a grid axis (repeatable).")] = [],  # noqa: B006
    set_: SetOption = [],  # noqa: B006
    out: Annotated[Path | None, typer.Option("--out", help="Folder (default runs/<recipe>_sweep).")] = None,
    data_root: DataRootOption = None,
    quiet: QuietOption = False,
    jobs: Annotated[int, typer.Option("--jobs", help="Points trained in parallel processes.")] = 1,
    metric: Annotated[str | None, typer.Option("--metric", help="test_errors or *_accuracy")] = None,
    backend: Annotated[
        str,
        typer.Option(
            "--backend",
            help="local (this machine; --jobs) or ray (one Ray task per point; pip install 'kdedge-distill[ray]').",
        ),
    ] = "local",
    address: Annotated[
        str | None,
        typer.Option(
            "--address",
            help="ray: join a running cluster (auto, "
            "HOST:PORT or ray://HOST:PORT); default: start Ray on this machine.",
        ),
    ] = None,
    cpus: Annotated[int | None, typer.Option("--cpus", help="ray: CPUs of the Ray started here.")] = None,
    cpus_per_point: Annotated[float, typer.Option("--cpus-per-point", help="ray: CPUs per point.")] = 1.0,
    gpus_per_point: Annotated[
        float, typer.Option("--gpus-per-point", help="ray: GPUs per point (0.5: two points share one).")
    ] = 0.0,
    retries: Annotated[
        int,
        typer.Option(
            "--retries",
            help="ray: retries of a point that crashed or lost "
            "its node (a bad config or NaN loss is reported, not retried).",
        ),
    ] = 2,
) -> None:
    """Train the teacher once, then one student per grid point.

    Interrupted? Rerun the same command (same --out): it resumes the sweep, skipping finished points.
    """
    from kdedge.commands.sweep import sweep_command

    sweep_command(
        recipe,
        grid,
        set_,
        out,
        data_root,
        jobs,
        quiet,
        metric,
        (backend, address, cpus, cpus_per_point, gpus_per_point, retries),
    )


@app.command()
def report(
    path: Annotated[Path, typer.Argument(help="A run directory or a sweep directory.", autocompletion=run_folders)],
) -> None:
    """Write PATH/report.md with tables and PNGs (learning curves, confusion matrices, sweep heat map)."""
    from kdedge.commands.report import report_command

    report_command(path)


@app.command("eval")
def evaluate_run(
    run_dir: Annotated[Path, typer.Argument(help="A run directory.", autocompletion=run_folders)],
    data_root: DataRootOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Re-evaluate a run's teacher and student on its recipe's test set."""
    from kdedge.commands.evaluate import evaluate_command

    evaluate_command(run_dir, data_root, as_json)


@app.command()
def export(
    run_dir: Annotated[Path, typer.Argument(help="A run directory.", autocompletion=run_folders)],
    model: Annotated[str, typer.Option("--model", help="student, teacher or both.")] = "both",
    precision: Annotated[str, typer.Option("--precision", help="Comma-separated.")] = "fp32,fp16,int8",
    opset: Annotated[int | None, typer.Option("--opset", help="ONNX opset (default 20).")] = None,
    calibration_images: Annotated[
        int | None,
        typer.Option("--calibration-images", help="Real training images for int8 calibration (default 128)."),
    ] = None,
    int8_scheme: Annotated[
        str | None,
        typer.Option(
            "--int8-scheme",
            help="u8s8 (default: u8 activations, s8 weights, fast on x86), u8s7 (7-bit weights: "
            "x86 without VNNI), s8s8, u8s8-gemm / u8s7-gemm (Conv/MatMul/Gemm only: ConvNeXt, Swin).",
        ),
    ] = None,
    int8_method: Annotated[
        str | None,
        typer.Option(
            "--int8-method",
            help="int8 quantiser: ort (onnxruntime, "
            "default) or nncf (OpenVINO's NNCF; pip install 'kdedge-distill[openvino]').",
        ),
    ] = None,
    min_agreement: Annotated[
        float | None,
        typer.Option("--min-agreement", help="Least fp16/int8 top-1 agreement with fp32 on test images (0.97)."),
    ] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="Use the first N test images only.")] = None,
    target: Annotated[
        str | None,
        typer.Option(
            "--target",
            help="cpu-x86: instead of exporting, write "
            "RUN/export/deploy/<stage>.cpu-x86.onnx, the fastest file `kdedge bench RUN` measured within "
            "--accuracy-bound of fp32.",
        ),
    ] = None,
    accuracy_bound: Annotated[
        float, typer.Option("--accuracy-bound", help="With --target: top-1 points the file may lose vs fp32.")
    ] = 0.5,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Replace RUN/export as a whole (no old file stays); "
            "built next to it and swapped in only if every file passes.",
        ),
    ] = False,
    formats: Annotated[
        str,
        typer.Option(
            "--format",
            help=f"Comma-separated, from {', '.join(FORMAT_NAMES)} "
            "(`kdedge formats` lists them with what is installed).",
        ),
    ] = "onnx",
    batch: Annotated[
        str, typer.Option("--batch", help="Batch sizes of fixed-batch formats (LiteRT): one file each.")
    ] = "1",
    data_root: DataRootOption = None,
    quiet: QuietOption = False,
    wide: WideOption = False,
) -> None:
    """Write RUN/export/<stage>.<precision>.<suffix> per format, each checked against PyTorch and
    self-describing."""
    if target is not None:
        from kdedge.commands.export import deploy_command

        deploy_command(run_dir, model, target, accuracy_bound)
        return
    from kdedge import api

    api.export(
        run_dir,
        model,
        precision,
        opset=opset,
        data_root=data_root,
        calibration_images=calibration_images,
        int8_scheme=int8_scheme,
        int8_method=int8_method,
        min_top1_agreement=min_agreement,
        limit=limit,
        quiet=quiet,
        force=force,
        wide=wide,
        formats=formats,
        batches=batch,
    )


@app.command()
def predict(
    model: Annotated[
        Path,
        typer.Argument(
            autocompletion=runs_and_onnx,
            help="A .onnx, .pte or .tflite file written by `kdedge export`, "
            "or a run folder (its deployable file, else its fp32 student).",
        ),
    ],
    images: Annotated[
        list[Path],
        typer.Argument(
            help="Image files (any size / mode), folders of them, or patterns such as 'photos/*.jpg'; one line each."
        ),
    ],
    top_k: Annotated[int, typer.Option("--top-k", help="Classes to show per image.")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of lines.")] = False,
) -> None:
    """Classify images: .onnx with onnxruntime, .tflite with ai-edge-litert (neither imports torch),
    .pte with ExecuTorch's runtime."""
    from kdedge.commands.predict import predict_command

    predict_command(model, images, top_k, as_json)


@app.command()
def bench(
    paths: Annotated[
        list[Path], typer.Argument(help="Run directories and/or bare .onnx files.", autocompletion=runs_and_onnx)
    ],
    device: Annotated[str, typer.Option("--device", help="cpu or cuda.")] = "cpu",
    batch: Annotated[str, typer.Option("--batch", help="Batch sizes, comma-separated.")] = "1,32",
    seconds: Annotated[float, typer.Option("--seconds", help="Timed seconds per row, after warm-up.")] = 2.0,
    threads: Annotated[int | None, typer.Option("--threads", help="CPU threads (default: all).")] = None,
    runtimes: Annotated[str, typer.Option("--runtimes", help=f"Any of {','.join(RUNTIME_NAMES)}.")] = "all",
    compile_: Annotated[bool, typer.Option("--compile", help="Also time torch.compile rows.")] = False,
    limit: Annotated[int | None, typer.Option("--limit", help="Score N test images only.")] = None,
    peak: Annotated[bool, typer.Option("--peak", help="Also measure peak GFLOP/s.")] = False,
    accuracy_bound: Annotated[
        float, typer.Option("--accuracy-bound", help="Top-1 points a deployable row may lose vs fp32.")
    ] = 0.5,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds before a row is killed.")] = 600,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write all rows as JSON.")] = None,
    csv_out: Annotated[Path | None, typer.Option("--csv", help="Write a CSV table.")] = None,
    md_out: Annotated[Path | None, typer.Option("--md", help="Write a Markdown table.")] = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="Write the latency-vs-accuracy PNG.")] = None,
    data_root: DataRootOption = None,
    quiet: QuietOption = False,
    wide: WideOption = False,
) -> None:
    """Latency, throughput, memory, size and accuracy of each model per runtime and precision."""
    from kdedge import api

    api.bench(
        list(paths),
        device=device,
        batch=batch,
        seconds=seconds,
        threads=threads,
        runtimes=runtimes,
        compile=compile_,
        limit=limit,
        peak=peak,
        accuracy_bound=accuracy_bound,
        timeout=timeout,
        data_root=data_root,
        quiet=quiet,
        wide=wide,
        outputs={"json": json_out, "csv": csv_out, "md": md_out, "plot": plot},
    )


@app.command("check")
def check_file(
    model: Annotated[
        Path, typer.Argument(help="An .onnx file written by `kdedge export`.", autocompletion=runs_and_onnx)
    ],
    images: Annotated[
        list[Path] | None,
        typer.Option("--images", help="Image files or folders to compare on (default: the run's test images)."),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", help="Compare on at most N images.")] = 256,
    data_root: DataRootOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Which runtimes that read ONNX (onnxruntime, OpenVINO, OpenCV DNN, tract) load this file and agree with
    onnxruntime on real test images; absent ones are "not installed"."""
    from kdedge.commands.check import check_command

    check_command(model, images, limit, data_root, as_json)


@app.command("formats")
def list_formats(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable list.")] = False,
) -> None:
    """The export formats: suffix, precisions, runtimes, and whether converter and runtime are installed."""
    from kdedge.commands.formats import formats_command

    formats_command(as_json)


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


def _rerun(drop: tuple[str, ...], add: list[str]) -> str:
    """This very command line (recipe, --set values and all), without the options in `drop` (and their
    values), plus `add`: the command a user can paste to continue or retry."""
    args, kept = sys.argv[1:], []
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in drop:
            skip = arg != "--force"  # --force takes no value
        elif not arg.startswith(tuple(f"{d}=" for d in drop)):
            kept.append(arg)
    return shlex.join(["kdedge", *kept, *add])


def _interrupted(err: Interrupted) -> str:
    """Ctrl-C: one line with what was saved and the exact command that continues."""
    if err.run_dir is None:
        return f"{err.what}; saved: {err.saved}; continue with the same command: {_rerun((), [])}"
    resume = _rerun(("--out", "--force", "--resume"), ["--resume", str(err.run_dir)])
    return f"{err.what}; saved: {err.saved}; continue with: {resume}"


def _diverged(err: Diverged) -> str:
    """A NaN stop: --resume would refuse a changed recipe, so offer a fresh start with a lower lr."""
    if err.lr is None:
        return f"error: {err}"
    resumed = next((b for a, b in zip(sys.argv, sys.argv[1:], strict=False) if a == "--resume"), None)
    lower = ["--set", f"{err.stage}.lr={err.lr / 10:g}", *(["--out", resumed] if resumed else []), "--force"]
    retry = _rerun(("--force", "--resume"), lower)
    why = "a new run; --resume continues only the same recipe"
    return f"error: {err}; retry with a lower lr ({why}): {retry}"


ASSIGNMENT = re.compile(r"[A-Za-z_]\w*(\.\w+)*=")


def expand_set_pairs(args: list[str]) -> list[str]:
    """`--set a=1 b=2` -> `--set a=1 --set b=2`: the KEY=VALUE words right after a --set's value belong to
    it (a word naming an existing file, such as a recipe path with '=' in it, never does)."""
    out: list[str] = []
    index, in_set = 0, False  # in_set: the words just before were --set VALUE [KEY=VALUE ...]
    while index < len(args):
        arg = args[index]
        if arg == "--set" and index + 1 < len(args):
            out += [arg, args[index + 1]]
            index, in_set = index + 2, True
            continue
        if in_set and ASSIGNMENT.match(arg) and not Path(arg).exists():
            out += ["--set", arg]
        else:
            in_set = arg.startswith("--set=")
            out.append(arg)
        index += 1
    return out


def main() -> None:
    """Entry point: every KdedgeError becomes one line on stderr and its exit code (2 input, 1 runtime)."""
    sys.argv[1:] = expand_set_pairs(sys.argv[1:])
    try:
        code = app(standalone_mode=False, prog_name="kdedge") or 0
        if code == 130:  # Typer's silent exit for a Ctrl-C outside a run (parsing, loading data)
            error_console.print("interrupted; nothing was written", markup=False, highlight=False)
        sys.exit(code)
    except Interrupted as err:
        say(_interrupted(err))
        sys.exit(err.exit_code)
    except Diverged as err:
        if os.environ.get("KDEDGE_DEBUG"):
            raise
        say(_diverged(err))
        sys.exit(err.exit_code)
    except UsageError as err:  # a typo'd option or a missing argument: one line too, not click's usage box
        if type(err).__name__ != "NoArgsIsHelpError":  # bare `kdedge`: the help was printed already
            command = err.ctx.command_path if err.ctx else "kdedge"
            say(f"error: {command}: {err.format_message()} (see {command} --help)")
        sys.exit(2)
    except KdedgeError as err:
        if os.environ.get("KDEDGE_DEBUG"):
            raise
        say(f"error: {err}")
        sys.exit(err.exit_code)
    except (KeyboardInterrupt, typer.Abort):
        error_console.print("interrupted")
        sys.exit(130)
