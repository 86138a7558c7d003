"""What `kdedge bench` does between parsing and printing: the command's options -> the checked BenchOptions
(kdedge.bench.run) -> run -> table and files."""

from __future__ import annotations

from kdedge.bench.run import BenchOptions, check_options, run_bench, runtime_choices
from kdedge.commands.options import BenchCommandOptions
from kdedge.errors import InputError, RuntimeFailure
from kdedge.files.fsguard import check_writable
from kdedge.runtime.check import check_model_file
from kdedge.runtime.threads import busy_hint, usable_cores


def parse_int_list(text: str, option: str) -> tuple[int, ...]:
    """'1,32' -> (1, 32); anything else is one clear InputError naming the option."""
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise InputError(f"{option}: expected whole numbers like 1,32 (got '{text}')") from None
    if not values or min(values) < 1:
        raise InputError(f"{option}: expected numbers >= 1 like 1,32 (got '{text}')")
    return values


def parse_runtimes(text: str) -> tuple[str, ...]:
    """'all' or a comma-separated subset of the runtimes."""
    allowed = runtime_choices()
    if text.strip() == "all":
        return allowed
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [name for name in names if name not in allowed]
    if unknown or not names:
        raise InputError(f"--runtimes: unknown '{','.join(unknown)}'; allowed: {', '.join(allowed)}")
    return names


def make_options(options: BenchCommandOptions) -> BenchOptions:
    """The checked measurement settings (kdedge.bench.run.BenchOptions) from the command's raw values
    (threads None: every core this process may use)."""
    settings = BenchOptions(
        device=options.device,
        batch_sizes=parse_int_list(options.batch, "--batch"),
        seconds=options.seconds,
        threads=options.threads or default_threads(),
        runtimes=parse_runtimes(options.runtimes),
        compile=options.compile,
        limit=options.limit,
        data_root=options.data_root,
        timeout_s=options.timeout,
        accuracy_bound=options.accuracy_bound,
        peak=options.peak,
    )
    check_options(settings)  # before any model or runtime is loaded
    return settings


def bench_command(options: BenchCommandOptions) -> dict:
    """Run the bench, print the table, write the requested files (json/csv/md/plot) and RUN/bench.json."""
    settings = make_options(options)
    paths, outputs = list(options.paths), options.outputs
    for path in paths:
        if not path.exists():
            raise InputError(f"{path}: no such run directory or .onnx file")
        if path.is_file():
            check_model_file(path)  # a hostile file: one line before any row is planned
    for kind, file in outputs.items():  # a read-only output folder: said before minutes of timing
        if file is not None:
            check_writable(file.parent, f"--{kind}")
    from kdedge.bench.deploy import save_run_results
    from kdedge.bench.results import bench_table, write_csv, write_json, write_markdown, write_pareto
    from kdedge.ui.console import console, make_progress, print_table, table_width

    hint = busy_hint(options.threads)  # timings beside another job: say so before minutes of timing
    if hint and not options.quiet:
        console.print(hint.replace("this run is slow", "timings matter"), markup=False, highlight=False)
    with make_progress(options.quiet) as progress:
        result = run_bench(paths, settings, progress)
    writers = {"json": write_json, "csv": write_csv, "md": write_markdown, "plot": write_pareto}
    for kind, file in outputs.items():
        if file is not None:
            writers[kind](result, file)
    save_run_results(result, [p for p in paths if p.is_dir()])
    if not options.quiet:
        width = table_width()
        print_table(bench_table(result, width, options.wide), width)
        notes = sorted({row["note"] for row in result["rows"] if row.get("note")})
        for note in notes:
            console.print(note, markup=False, highlight=False)
        for kind, file in outputs.items():
            if file is not None:
                console.print(f"{kind}: {file}", markup=False, highlight=False)
        failed = failure_line(result["rows"])
        if failed and any(row["status"] == "ok" for row in result["rows"]):
            console.print(failed, markup=False, highlight=False)  # the last line; none ok: the error says it
    return result


def failure_line(rows: list[dict]) -> str:
    """'2 of 6 rows failed, 1 skipped (see the status column)', or '' when every row is ok."""
    failed = sum(row["status"].startswith("error") for row in rows)
    skipped = sum(row["status"].startswith("skipped") for row in rows)
    if not failed and not skipped:
        return ""
    parts = [f"{failed} of {len(rows)} rows failed"] if failed else [f"{skipped} of {len(rows)} rows skipped"]
    if failed and skipped:
        parts.append(f"{skipped} skipped")
    return ", ".join(parts) + " (see the status column)"


def check_some_row_ran(rows: list[dict]) -> None:
    """RuntimeFailure (exit 1) when no row was measured: every one failed or was skipped."""
    if not any(row["status"] == "ok" for row in rows):
        first = next((row["status"] for row in rows if row["status"].startswith("error")), "")
        why = f"; first: {first[:160]}" if first else ""
        raise RuntimeFailure(f"no bench row succeeded: {failure_line(rows) or 'no rows'}{why}")


def default_threads() -> int:
    return usable_cores()
