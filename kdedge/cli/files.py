"""The commands that work on a finished run or its files: eval, report, export, bench, predict, check. Each builds
its options object (kdedge.commands.options) from what Typer parsed and calls kdedge.api (or the command)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kdedge.cli.completion import run_folders, runs_and_onnx
from kdedge.cli.params import (
    DataRootOption,
    JsonOption,
    PredictSkipBadOption,
    QuietOption,
    RunArgument,
    WideOption,
)
from kdedge.commands.options import BenchCommandOptions, CheckOptions, EvalOptions, ExportOptions, PredictOptions
from kdedge.runtime.formats import FORMATS, file_runtimes

FORMAT_NAMES = tuple(FORMATS)  # the format table (kdedge.runtime.formats) names what export and bench offer
RUNTIME_NAMES = ("torch", *file_runtimes())


def report(
    path: Annotated[Path, typer.Argument(help="A run directory or a sweep directory.", autocompletion=run_folders)],
) -> None:
    """Write PATH/report.md with tables and PNGs (learning curves, confusion matrices, sweep heat map)."""
    from kdedge.commands.report import report_command

    report_command(path)


def evaluate(run_dir: RunArgument, data_root: DataRootOption = None, as_json: JsonOption = False) -> None:
    """Re-evaluate a run's teacher and student on its recipe's test set."""
    from kdedge.commands.evaluate import evaluate_command

    evaluate_command(EvalOptions(run_dir, data_root, as_json))


def export(
    ctx: typer.Context,
    run_dir: RunArgument,
    models: Annotated[str, typer.Option("--model", help="student, teacher or both.")] = "both",
    precisions: Annotated[str, typer.Option("--precision", help="Comma-separated.")] = "fp32,fp16,int8",
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
    min_top1_agreement: Annotated[
        float | None,
        typer.Option(
            "--min-agreement",
            help="Least fp16/int8 top-1 agreement with fp32 on test images (0.97); with --target, the least a "
            "deployable file needs (default: the run's export.min_top1_agreement).",
        ),
    ] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="Use the first N test images only.")] = None,
    target: Annotated[
        str | None,
        typer.Option(
            "--target",
            help="cpu-x86: instead of exporting, write "
            "RUN/export/deploy/<stage>.cpu-x86.onnx, the fastest file `kdedge bench RUN` measured within "
            "--accuracy-bound of fp32 that agrees with fp32 on --min-agreement of the test images.",
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
    batches: Annotated[
        str, typer.Option("--batch", help="Batch sizes of fixed-batch formats (LiteRT): one file each.")
    ] = "1",
    data_root: DataRootOption = None,
    quiet: QuietOption = False,
    wide: WideOption = False,
) -> None:
    """Write RUN/export/<stage>.<precision>.<suffix> per format, each checked against PyTorch and
    self-describing."""
    import warnings

    from kdedge import api
    from kdedge.errors import RuntimeFailure

    options = ExportOptions(**ctx.params)
    if options.target is not None:
        from kdedge.commands.export import deploy_command

        deploy_command(options)
        return
    with warnings.catch_warnings():  # the API's warning says what the error line below says: once is enough
        warnings.simplefilter("ignore", RuntimeWarning)
        result = api.export(options)
    if result.failed:  # the API returns the files that passed; the command still fails (exit 1)
        raise RuntimeFailure(result.message)


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
    skip_bad_images: PredictSkipBadOption = False,
) -> None:
    """Classify images: .onnx with onnxruntime, .tflite with ai-edge-litert (neither imports torch),
    .pte with ExecuTorch's runtime."""
    from kdedge.commands.predict import predict_command

    predict_command(PredictOptions(model, tuple(images), top_k, as_json, skip_bad_images))


def check(
    model: Annotated[
        Path, typer.Argument(help="An .onnx file written by `kdedge export`.", autocompletion=runs_and_onnx)
    ],
    images: Annotated[
        list[Path] | None,
        typer.Option("--images", help="Image files or folders to compare on (default: the run's test images)."),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Compare on at most N images.")] = 256,
    data_root: DataRootOption = None,
    as_json: JsonOption = False,
) -> None:
    """Which runtimes that read ONNX (onnxruntime, OpenVINO, OpenCV DNN, tract) load this file and agree with
    onnxruntime on real test images; absent ones are "not installed"."""
    from kdedge.commands.check import check_command

    check_command(CheckOptions(model, tuple(images or ()), limit, data_root, as_json))


def bench(
    ctx: typer.Context,
    paths: Annotated[
        list[Path], typer.Argument(help="Run directories and/or bare .onnx files.", autocompletion=runs_and_onnx)
    ],
    device: Annotated[str, typer.Option("--device", help="cpu or cuda.")] = "cpu",
    batch: Annotated[str, typer.Option("--batch", help="Batch sizes, comma-separated.")] = "1,32",
    seconds: Annotated[float, typer.Option("--seconds", help="Timed seconds per row, after warm-up.")] = 2.0,
    threads: Annotated[int | None, typer.Option("--threads", help="CPU threads (default: all).")] = None,
    runtimes: Annotated[str, typer.Option("--runtimes", help=f"Any of {','.join(RUNTIME_NAMES)}.")] = "all",
    compile: Annotated[bool, typer.Option("--compile", help="Also time torch.compile rows.")] = False,
    limit: Annotated[int | None, typer.Option("--limit", help="Score N test images only.")] = None,
    peak: Annotated[bool, typer.Option("--peak", help="Also measure peak GFLOP/s.")] = False,
    accuracy_bound: Annotated[
        float, typer.Option("--accuracy-bound", help="Top-1 points a deployable row may lose vs fp32.")
    ] = 0.5,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds before a row is killed.")] = 600,
    json: Annotated[Path | None, typer.Option("--json", help="Write all rows as JSON.")] = None,
    csv: Annotated[Path | None, typer.Option("--csv", help="Write a CSV table.")] = None,
    md: Annotated[Path | None, typer.Option("--md", help="Write a Markdown table.")] = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="Write the latency-vs-accuracy PNG.")] = None,
    data_root: DataRootOption = None,
    quiet: QuietOption = False,
    wide: WideOption = False,
) -> None:
    """Latency, throughput, memory, size and accuracy of each model per runtime and precision."""
    from kdedge import api
    from kdedge.commands.bench import check_some_row_ran

    params = dict(ctx.params)
    outputs = {kind: params.pop(kind) for kind in ("json", "csv", "md", "plot")}
    check_some_row_ran(api.bench(BenchCommandOptions(**params, outputs=outputs)))  # none ran: exit 1
