"""`kdedge study RECIPE... --seeds 0 1` or `kdedge study STUDY.yaml`: recipes x seeds x rows, each KD row
beside its no-KD baseline, trained (or read, when finished) into STUDY/ and tabulated there
(kdedge.experiments.study); the table on screen."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from kdedge.commands.options import StudyOptions
from kdedge.errors import InputError, RuntimeFailure
from kdedge.experiments.study.plan import Plan, make_plan
from kdedge.experiments.study.results import run_record, study_rows
from kdedge.experiments.study.run import check_plan, run_plan
from kdedge.experiments.study.spec import (
    METRICS,
    StudySpec,
    is_study_file,
    parse_variant,
    read_study_file,
    spec_from,
)
from kdedge.experiments.study.table import table_record, write_tables
from kdedge.experiments.sweep import parse_grid
from kdedge.experiments.sweep_results import is_finished
from kdedge.ui.console import console, make_progress, print_table, table_width
from kdedge.ui.tables import Column, fitted_table


def study_command(options: StudyOptions) -> dict[str, Any]:
    """Plan the study (everything checked before anything trains), train what is not finished, write
    STUDY/study.json and study.md (and --json), print the table. Returns the table file's content."""
    spec = study_spec(options)
    out = options.out or default_out(options)
    plan = make_plan(spec, out)
    failed: dict[str, str] = {}
    todo = [run.path for run in [*plan.teachers, *plan.trained_cells()] if not is_finished(run.path)]
    if not options.quiet:
        _print_header(plan, 0 if options.table_only else len(todo))
    if todo and not options.table_only:
        _refuse_torchrun()
        check_plan(plan, options.data_root)
        from kdedge.experiments.stopping import graceful_stop

        with graceful_stop(True), make_progress(options.quiet) as progress:
            failed = run_plan(plan, options.data_root, progress)
    records = [run_record(cell, spec.metric) for cell in plan.cells]
    rows = study_rows(plan, records)
    record = table_record(plan, rows, records, command_line(options, out), failed)
    files = write_tables(plan, record, options.json)
    if not options.quiet:
        _print_rows(record, options.wide)
        console.print(f"study folder: {out} ({', '.join(str(f) for f in files)})", soft_wrap=True)
    if failed:
        runs = len(plan.trained_cells()) + len(plan.teachers)
        raise RuntimeFailure(
            f"study: {len(failed)} of {runs} runs failed (see {out / 'failed.json'}); "
            "the table holds the others; rerun the same command to retry them"
        )
    return record


def study_spec(options: StudyOptions) -> StudySpec:
    """The study file's keys (when the one target is a study file) changed by the command line's options, or
    the recipes given with those options."""
    targets = options.targets
    if not targets:
        raise InputError("study: give a study file (NAME.yaml with a recipes: list) or one or more recipes")
    files = [target for target in targets if is_study_file(target)]
    if files and len(targets) > 1:
        raise InputError(f"study: {files[0]} is a study file; give it alone (its recipes: list names the recipes)")
    config = read_study_file(Path(files[0])) if files else {"recipes": list(targets)}
    source = files[0] if files else "kdedge study"
    for key in ("seeds", "metric", "title", "baseline"):
        if getattr(options, key) is not None:
            config[key] = list(getattr(options, key)) if key == "seeds" else getattr(options, key)
    if options.metric is not None and options.metric not in METRICS:
        raise InputError(f"--metric '{options.metric}': allowed are {', '.join(METRICS)}")
    config["set"] = [*_as_list(config.get("set")), *options.overrides]
    variants = dict(parse_variant(text) for text in options.variants)
    if variants:
        config["variants"] = {**(config.get("variants") or {}), **variants}
    if options.grid:
        config["grid"] = {**(config.get("grid") or {}), **parse_grid(list(options.grid))}
    return spec_from(config, source)


def _as_list(value: Any) -> list:
    return [] if value is None else [value] if isinstance(value, str) else list(value)


def default_out(options: StudyOptions) -> Path:
    """runs/<study file stem>, or runs/<first recipe>_study."""
    first = Path(options.targets[0])
    return Path("runs") / (first.stem if is_study_file(options.targets[0]) else f"{first.stem}_study")


def command_line(options: StudyOptions, out: Path) -> str:
    """The command that regenerates the table (what the results page shows), from the options."""
    words = ["kdedge", "study", *options.targets]
    words += ["--seeds", *map(str, options.seeds)] if options.seeds else []
    for flag, values in (("--set", options.overrides), ("--variant", options.variants), ("--grid", options.grid)):
        words += [word for value in values for word in (flag, value)]
    words += [] if options.baseline is None else ["--baseline" if options.baseline else "--no-baseline"]
    words += ["--metric", options.metric] if options.metric else []
    words += ["--title", options.title] if options.title else []
    return shlex.join([*words, "--out", str(out)])


def _refuse_torchrun() -> None:
    from kdedge.train import distributed

    if distributed.world_from_env().distributed:  # every rank would train every run into the same folders
        raise InputError("study: runs its runs one after another in one process, not under torchrun")


def _print_header(plan: Plan, todo: int) -> None:
    title = plan.spec.title or ", ".join(plan.spec.entry_names())
    console.print(
        f"[bold]study[/] {title}: {len(plan.trained_cells())} student runs, {len(plan.teachers)} teacher runs "
        f"({todo} to train now) -> {plan.out}",
        soft_wrap=True,
    )


def _print_rows(record: dict[str, Any], wide: bool) -> None:
    """The table file's rows on screen, fitted to the terminal (the per-seed values go first)."""
    names = record["columns"]
    keys = {"recipe", "training"}
    drops = {"model": 1, "train s (mean)": 2, "QWK mean": 3, "max-min": 4}
    columns = [
        Column(name, key=name in keys, drop=0 if name in keys else drops.get(name, 5), left=name in keys)
        for name in names
    ]
    cells = [["-" if value is None else str(value) for value in row] for row in record["rows"]]
    width = table_width()
    print_table(fitted_table(f"{record['title']}; {record['headline']}", columns, cells, width, wide), width)
