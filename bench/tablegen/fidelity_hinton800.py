"""The fidelity rows of the 2x800 study from the recipe's 320-epoch teacher (hinton_800_paper.json, a
`kdedge study` table): the teacher at 2 seeds, the paper's protocol (unaugmented student) with and without KD,
and the best KD row on jittered images beside the no-KD student trained on the same images for as long.
"""

from __future__ import annotations

from tablegen.fidelity_rows import HINTON, Measured, Ref
from tablegen.files import Files

NAME = "hinton_800_paper.json"


def _measured(data: dict, row: dict, text: str) -> Measured:
    """kdedge's number of one study row (a summary_rows entry): its mean over seeds, per-seed values and mean
    train time; the command is the study's, or for the teacher the seeds' `kdedge train` commands."""
    teacher = row["kind"] == "teacher"
    trains = [line for line in data["commands"] if line.startswith("kdedge train ")]
    return Measured(
        row["mean"],
        text,
        " / ".join(f"{value:g}" for value in row["values"]),
        "; ".join(trains) if teacher else data["commands"][-1],
        ", ".join(str(seed) for seed in row["seeds"]),
        f"{row['train_seconds_mean']:,.0f} s/run ({'teacher' if teacher else 'student'})",
        data,
        NAME,
    )


def mnist_800_paper(files: Files) -> list[tuple[Ref, Measured]]:
    """Teacher, paper-protocol student with and without KD, and the best jittered KD student (hinton_800_paper)."""
    data = files[NAME]
    rows = {row["row"]: row for row in data["summary_rows"]}
    jittered = [row for row in rows.values() if row["kind"] == "student" and "jitter" in row["row"]]
    best = min(jittered, key=lambda row: row["mean"])
    what = "Hinton MNIST, 320-epoch teacher: "
    versus = f"{best['row']}; the same student without KD {best['baseline_mean']:.1f}"
    pairs = [  # (what, the paper's number, the study row, words after kdedge's number)
        ("teacher 784-1200-1200-10", 67, rows["teacher"], ""),
        ("2x800 student without KD", 146, rows["no-kd"], ""),
        ("2x800 student with KD (T 20)", 74, rows["KD"], ""),
        ("2x800 student with KD, best on jittered images", 74, best, f" ({versus})"),
    ]
    return [
        (Ref(what + name, paper, "errors", True, HINTON), _measured(data, row, f"{row['mean']:.1f} errors{extra}"))
        for name, paper, row, extra in pairs
    ]
