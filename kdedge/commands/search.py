"""`kdedge search RECIPE --target T --latency-ms X`: the command's options -> the experiment's config
(kdedge.experiments.search), the search with progress, then its table, the pick and the commands that use
it; `--show-space` prints the search space."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from kdedge.commands.options import SearchOptions
from kdedge.commands.sweep import backend_options
from kdedge.errors import InputError, RuntimeFailure
from kdedge.experiments.search.options import SearchConfig, prepare
from kdedge.experiments.search.space import space_text
from kdedge.ui.console import console, make_progress, print_table, table_width
from kdedge.ui.tables import Column, fitted_table, si

if TYPE_CHECKING:
    from kdedge.experiments.search.run import SearchResult

COLUMNS = (
    Column("candidate", key=True, left=True),
    Column("params", drop=3),
    Column("MACs", drop=2),
    Column("MB"),
    Column("ms"),
    Column("stage", drop=4),
    Column("val %", drop=1),
    Column("acc %"),
    Column("status", left=True),
)


def show_space(space: Path | None) -> None:
    """Print the space file as written (the packaged one, or --space FILE), after checking it."""
    print(space_text(space), end="")  # as written: no wrapping, `> my_space.yaml` gives the same file


def search_config(options: SearchOptions) -> SearchConfig:
    """The experiment's config from the command's options; missing or ray-only options are one line each."""
    if options.target is None or options.latency_ms is None:
        raise InputError("search: give --target and --latency-ms (`kdedge search --show-space` shows the space)")
    ray = backend_options(options)  # None: train here (ray-only options refused); Ray missing: said now
    same = ("size_mb", "peak_mb", "percentile", "threads", "batch", "overrides", "out", "space", "data_root")
    same += ("hours", "cost_cache", "seconds", "seeds", "quiet")
    return SearchConfig(
        options.recipe,
        options.target,
        options.latency_ms,
        ray=ray,
        use_cost_cache=not options.no_cost_cache,
        **{name: getattr(options, name) for name in same},
    )


def search_command(options: SearchOptions) -> SearchResult:
    """Run the search with progress; print its table and what to do with the pick. No file meeting the
    budget (after the truth stage) is a RuntimeFailure naming the closest, once the table is printed."""
    setup = prepare(search_config(options))  # a typo'd recipe, target or budget: one line, before torch loads
    from kdedge.experiments.search.run import run_search

    if not options.quiet:
        console.print(
            f"[bold]search[/] {options.recipe} -> {options.target}: latency {options.percentile} <= "
            f"{options.latency_ms:g} ms" + (f", size <= {options.size_mb:g} MB" if options.size_mb else ""),
            highlight=False,
        )
    with make_progress(options.quiet) as progress:
        result = run_search(setup, progress)
    if not options.quiet:
        _print_result(result, options)
    if result.pick is None:
        closest = f"; closest: {result.closest}" if result.closest else ""
        raise RuntimeFailure(
            f"no finalist's file meets the budget when measured again{closest} (see {result.folder / 'search.csv'})"
        )
    return result


def _cells(row: dict, percentile: str) -> list[str]:
    latency = row.get(f"latency_ms_{percentile}")
    percent = lambda value: "-" if value is None else f"{100 * value:.2f}"  # noqa: E731
    name = row["name"] + (" (recipe's)" if row["own"] else "")
    return [
        name,
        si(row.get("params")),
        si(row.get("macs")),
        "-" if row.get("size_mb") is None else f"{row['size_mb']:.3g}",
        "-" if latency is None else f"{latency:.3g}",
        row.get("stage") or "-",
        percent(row.get("val_accuracy")),
        percent(row.get("accuracy")),
        row["status"],
    ]


def _print_result(result: SearchResult, options: SearchOptions) -> None:
    width = table_width()
    columns = [*COLUMNS]
    columns[4] = Column(f"{options.percentile} ms")
    cells = [_cells(row, options.percentile) for row in result.rows]
    caption = (
        "acc %: test accuracy of the exported file (finalists) or of the PyTorch model after its short "
        "schedule; ms, MB: the trained file (finalists) or a random-weights file (others)"
    )
    title = f"search: {len(result.rows)} candidates, best first"
    table = fitted_table(title, columns, cells, width, options.wide, caption, more="--wide or search.csv")
    print_table(table, width)
    console.print(f"search folder: {result.folder} (search.json, search.csv, pareto.png)", highlight=False)
    if result.pick is not None:
        console.print(f"pick: {result.pick} -> {result.best_dir}", highlight=False)
        console.print(f"  kdedge predict {result.best_file} IMAGE", highlight=False, markup=False)
        console.print(f"  kdedge bench {result.best_dir}", highlight=False, markup=False)
