"""The fidelity table (bench/results/fidelity.json): every number a paper or an experiment's target gives,
beside kdedge's measured one. kdedge's numbers are read from the result files in bench/results/ (each row
names its file) by fidelity_rows.py, which also holds the reference numbers with their sources.
"""

from __future__ import annotations

from tablegen.fidelity_hinton800 import mnist_800_studies
from tablegen.fidelity_rows import (
    HINTON,
    MEDMNIST,
    Measured,
    Ref,
    aptos,
    cifar10,
    cnn_to_mlp,
    machine_of,
    mnist_800,
    mnist_800_methods,
    retinamnist,
    show,
    sweeps,
    transfer_sets,
)
from tablegen.files import Files, table_text

NAME = "fidelity.json"
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
    if gap == 0:
        return "meets (equal)"
    if ref.unit == "errors":
        count = f"{round(abs(gap), 1):g}"  # a mean over seeds keeps one decimal: 0.5 or 0.7, not a rounded 0
        size = f"{count} {'fewer ' if gap >= 0 else ''}{'error' if count == '1' else 'errors'}"
    elif ref.unit == "accuracy":
        size = f"{abs(gap):.3f}"
    else:  # a gap under 0.05 points keeps its second decimal (0.01, not a rounded 0.0)
        size = f"{abs(gap):.1f} points" if abs(gap) >= 0.05 else f"{abs(gap):.2f} points"
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


def build(files: Files) -> dict:
    """The table file (the keys of kdedge.report.results_page), every kdedge number read from `files`."""
    pairs: list[tuple[Ref, Measured]] = [
        *mnist_800_studies(files),
        *mnist_800(files),
        *mnist_800_methods(files),
        *transfer_sets(files),
        *sweeps(files),
        *cnn_to_mlp(files),
        *retinamnist(files),
        *cifar10(files),
        *aptos(files),
    ]
    return {
        "title": "Fidelity: kdedge beside the papers' numbers and the experiments' targets",
        "experiment": "bench/tables.py",
        "order": 0,
        "headline": headline(pairs),
        "date": "{} to {}".format(*sorted(measured.source["date"][:10] for _, measured in pairs)[:: len(pairs) - 1]),
        "machine": "the machine of each row (its 'machine, date' column; the row's own table gives the load)",
        "commands": ["python bench/tables.py"],
        "source": "the result file named in each row; the reference numbers and their sources in "
        "bench/tablegen/fidelity_rows.py",
        "columns": COLUMNS,
        "rows": [row(ref, measured) for ref, measured in pairs],
        "notes": NOTES,
    }


def fidelity_text(files: Files) -> str:
    """fidelity.json's text, as it has always been written (one-space indent, characters as they are)."""
    return table_text(build(files), indent=1, ensure_ascii=False)
