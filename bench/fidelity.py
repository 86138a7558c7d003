"""The fidelity table: every number a paper or an experiment's target gives, beside kdedge's measured one.

    python bench/fidelity.py && python bench/make_tables.py    # rewrite bench/results/fidelity.json, the page
    python bench/fidelity.py --check                           # exit 1 when fidelity.json is out of date

kdedge's numbers are read from the result files in bench/results/ (each row names its file) by
bench/fidelity_rows.py, which also holds the reference numbers with their sources. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/, for fidelity_rows when imported by a test

from fidelity_rows import (  # noqa: E402
    HINTON,
    MEDMNIST,
    RESULTS,
    Measured,
    Ref,
    aptos,
    cifar10,
    cnn_to_mlp,
    machine_of,
    mnist_800,
    retinamnist,
    show,
    sweeps,
    transfer_sets,
)

TARGET = RESULTS / "fidelity.json"
COLUMNS = [
    "experiment",
    "reference (source)",
    "kdedge",
    "per seed",
    "verdict",
    "recipe / command",
    "seeds",
    "wall",
    "machine, date",
    "result file",
]


def verdict(ref: Ref, value: float | None) -> str:
    """'meets (margin)' at or better than the reference, 'trails by gap' below it, or 'not run'."""
    if value is None:
        return "not run"
    gap = (value - ref.value) * (-1 if ref.lower else 1)
    if ref.unit == "errors":
        size = f"{abs(gap):.0f} {'fewer ' if gap >= 0 else ''}errors"
    elif ref.unit == "accuracy":
        size = f"{abs(gap):.3f}"
    else:
        size = f"{abs(gap):.1f} points"
    return f"meets ({size})" if gap >= 0 else f"trails by {size}"


def row(ref: Ref, measured: Measured) -> list[str]:
    reference = ref.source if ref.value != ref.value else f"{show(ref.value, ref.unit)}, {ref.source}"
    if ref.unit == "% fewer errors":
        reference = f">= {reference}"
    return [
        ref.experiment,
        reference,
        measured.text,
        measured.per_seed,
        verdict(ref, measured.value),
        measured.command,
        measured.seeds,
        measured.wall,
        f"{machine_of(measured.source)}; {measured.source['date']}",
        f"bench/results/{measured.file}",
    ]


NOTES = [
    "verdict: 'meets' = at or better than the reference (fewer errors, higher accuracy or reduction), with "
    "the margin; 'trails by' = the gap still open; 'not run' = kdedge has no number to set beside it",
    "one run unless the seeds column lists more: on MNIST a few errors either way is run-to-run noise "
    "(see the 2x800 table's notes); each row's table has the full commands and notes",
    "the 2x30 rows give the best of the sweep's 10 (alpha, T) points; the third RetinaMNIST attempt keeps each "
    "run's best validation epoch (student.keep=best_val), its last-epoch accuracy is given beside it",
]


def headline(pairs: list[tuple[Ref, Measured]]) -> str:
    """Met / total per reference (each paper, then the experiments' own targets), and how many are not run."""
    groups = {
        HINTON: "Hinton et al. 2015",
        MEDMNIST: "MedMNIST v2 on RetinaMNIST",
        "": "the experiments' own targets and references",
    }
    parts, not_run = [], 0
    for source, name in groups.items():
        ran = [(r, m) for r, m in pairs if (r.source == source or (not source and r.source not in groups))]
        not_run += sum(m.value is None for _, m in ran)
        ran = [(r, m) for r, m in ran if m.value is not None]
        met = sum(verdict(r, m.value).startswith("meets") for r, m in ran)
        parts.append(f"{name} {met} of {len(ran)} met")
    return "kdedge beside every paper and target number: " + "; ".join(parts) + f"; {not_run} not run"


def build() -> dict:
    """The table file (the keys of kdedge.report.results_page), every kdedge number read from bench/results/."""
    pairs: list[tuple[Ref, Measured]] = [
        *mnist_800(),
        *transfer_sets(),
        *sweeps(),
        *cnn_to_mlp(),
        *retinamnist(),
        *cifar10(),
        *aptos(),
    ]
    rows = [row(ref, measured) for ref, measured in pairs]
    return {
        "title": "Fidelity: kdedge beside the papers' numbers and the experiments' targets",
        "experiment": "bench/fidelity.py",
        "order": 0,
        "headline": headline(pairs),
        "date": "{} to {}".format(*sorted(measured.source["date"][:10] for _, measured in pairs)[:: len(pairs) - 1]),
        "machine": "the machine of each row (its 'machine, date' column; the row's own table gives the load)",
        "commands": ["python bench/fidelity.py && python bench/make_tables.py"],
        "source": "the result file named in each row; the reference numbers and their sources in "
        "bench/fidelity_rows.py",
        "columns": COLUMNS,
        "rows": rows,
        "notes": NOTES,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that fidelity.json is up to date")
    args = parser.parse_args(argv)
    try:
        text = json.dumps(build(), indent=1, ensure_ascii=False) + "\n"
    except (OSError, KeyError, IndexError, StopIteration, ValueError) as err:
        print(f"error: cannot read a result file: {type(err).__name__}: {err}", file=sys.stderr)
        return 2
    if args.check:
        if not TARGET.is_file() or TARGET.read_text() != text:
            print(
                f"error: {TARGET.relative_to(RESULTS.parents[1])} is out of date: run python bench/fidelity.py",
                file=sys.stderr,
            )
            return 1
        return 0
    TARGET.write_text(text)
    print(f"wrote {TARGET.relative_to(RESULTS.parents[1])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
