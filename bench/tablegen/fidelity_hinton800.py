"""The fidelity rows of the 2x800 study from the recipe's 320-epoch teacher (hinton_800_paper.json, a
`kdedge study` table): the teacher at 2 seeds, the paper's protocol (unaugmented student) with and without KD,
and the best KD row on jittered images beside the no-KD student on the same images.
"""

from __future__ import annotations

from tablegen.fidelity_rows import HINTON, Measured, Ref
from tablegen.files import Files

NAME = "hinton_800_paper.json"
JITTERED_BASELINE = "no KD, student.augment=jitter"


def _measured(data: dict, row: list, text: str, what_ran: str) -> Measured:
    """kdedge's number of one study row: its mean over seeds, per-seed values and mean train time; the command
    is the study's, or for the teacher the seeds' `kdedge train` commands."""
    column = data["columns"].index
    teachers = [line for line in data["commands"] if line.startswith("kdedge train ")]
    return Measured(
        float(row[column("mean")]),
        text,
        str(row[column("test errors per seed")]),
        "; ".join(teachers) if what_ran == "teacher" else data["commands"][-1],
        ", ".join(str(seed) for seed in range(int(row[column("seeds")]))),
        f"{row[column('train s (mean)')]:,.0f} s/run ({what_ran})",
        data,
        NAME,
    )


def mnist_800_paper(files: Files) -> list[tuple[Ref, Measured]]:
    """Teacher, paper-protocol student with and without KD, and the best jittered KD student (hinton_800_paper)."""
    data = files[NAME]
    column = data["columns"].index
    rows = {row[column("training")]: row for row in data["rows"]}
    mean = {name: float(row[column("mean")]) for name, row in rows.items()}
    jittered = [name for name in rows if name.endswith("-jitter")]
    best = min(jittered, key=mean.__getitem__)
    what = "Hinton MNIST, 320-epoch teacher: "
    return [
        (
            Ref(what + "teacher 784-1200-1200-10", 67, "errors", True, HINTON),
            _measured(data, rows["teacher"], f"{mean['teacher']:.1f} errors", "teacher"),
        ),
        (
            Ref(what + "2x800 student without KD", 146, "errors", True, HINTON),
            _measured(data, rows["no KD"], f"{mean['no KD']:.1f} errors", "student"),
        ),
        (
            Ref(what + "2x800 student with KD (T 20)", 74, "errors", True, HINTON),
            _measured(data, rows["KD"], f"{mean['KD']:.1f} errors", "student"),
        ),
        (
            Ref(what + "2x800 student with KD, best of KD and DIST, jittered images", 74, "errors", True, HINTON),
            _measured(
                data,
                rows[best],
                f"{mean[best]:.1f} errors ({best}; the same student without KD {mean[JITTERED_BASELINE]:.1f})",
                "student",
            ),
        ),
    ]
