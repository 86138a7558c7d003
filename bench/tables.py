"""Every published table from the result files in bench/results/: the benchmark scripts' raw files become
table files (<name>_table.json), the fidelity table (fidelity.json) sets kdedge's numbers beside the papers'
and the targets', and docs/results.md and README's "Results at a glance" render them all.

    python bench/tables.py            # regenerate every table file, the results page and README's table
    python bench/tables.py --check    # exit 1, naming each file, when any of them is out of date
    python bench/tables.py collect NAME SEARCH_DIR [SEARCH_DIR ...] --title "..." [--order 95] [--note ...]
                                      # `kdedge search` folders -> bench/results/search_NAME.json, then the above

Standard library and kdedge.report only (no torch). The pieces are in bench/tablegen/.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's kdedge, whichever one is installed
sys.path.insert(0, str(ROOT / "bench"))  # tablegen, also when a test imports this file

from tablegen import deploy, retina, search, throughput, training  # noqa: E402
from tablegen.fidelity import NAME as FIDELITY  # noqa: E402
from tablegen.fidelity import fidelity_text  # noqa: E402
from tablegen.files import RESULTS, ResultFileError, read_results, table_text  # noqa: E402
from tablegen.page import README, documents  # noqa: E402

from kdedge.report.results_page import TableFileError  # noqa: E402

GENERATORS = (retina.tables, training.tables, throughput.tables, deploy.tables, search.tables)


def generated(results: Path = RESULTS, readme: Path = README) -> dict[Path, str]:
    """Every generated file's text, from the result files of `results`: table files, fidelity.json, the page
    and README (read from `readme`). Nothing is written."""
    files = read_results(results)
    wanted: dict[Path, str] = {}
    for make in GENERATORS:
        for name, table in make(files).items():
            wanted[results / name] = table_text(table)
            files[name] = json.loads(wanted[results / name])
    wanted[results / FIDELITY] = fidelity_text(files)
    files[FIDELITY] = json.loads(wanted[results / FIDELITY])
    return wanted | documents(files, readme.read_text())


def stale(wanted: dict[Path, str]) -> list[Path]:
    """The files whose text on disk differs from what they should hold."""
    return [path for path, text in wanted.items() if not path.is_file() or path.read_text() != text]


def shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def regenerate(check: bool) -> int:
    """Write the files that are out of date (or, with check, name them and return 1)."""
    wanted = generated()
    out_of_date = stale(wanted)
    for path in out_of_date:
        if check:
            print(f"error: {shown(path)} is out of date: run python bench/tables.py", file=sys.stderr)
        else:
            path.write_text(wanted[path])
            print(f"wrote {shown(path)}")
    return 1 if check and out_of_date else 0


def parser() -> argparse.ArgumentParser:
    """The command line: no subcommand regenerates (or --check checks); `collect` adds a search's results."""
    top = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    top.add_argument("--check", action="store_true", help="only check that every generated file is up to date")
    sub = top.add_subparsers(dest="command")
    add = sub.add_parser("collect", help="kdedge search folders -> bench/results/search_NAME.json, then regenerate")
    add.add_argument("name")
    add.add_argument("folders", nargs="+", type=Path)
    add.add_argument("--title", required=True)
    add.add_argument("--order", type=int, default=95)
    add.add_argument("--note", action="append", default=[])
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "collect":
            print(f"wrote {shown(search.collect(args.name, args.folders, args.title, args.order, args.note))}")
        return regenerate(args.check)
    except (ResultFileError, TableFileError) as err:
        print(f"error: {err}", file=sys.stderr)
    except (OSError, KeyError, IndexError, StopIteration, TypeError, ValueError) as err:
        print(f"error: cannot read a result file: {type(err).__name__}: {err}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
