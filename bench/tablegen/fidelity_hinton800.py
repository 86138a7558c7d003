"""The fidelity rows of the 2x800 studies (`kdedge study` tables): from the recipe's 320-epoch teacher
(hinton_800_paper.json), from the same teachers after a 100-epoch warm restart (hinton_800_restart.json),
from teachers that keep a moving average of their weights (hinton_800_ema.json) and students that keep one too
(hinton_800_ema_students.json), and from teachers trained under bf16 autocast with the mlp's fast dropout
masks (hinton_800_fast.json). Each gives the teacher at its seeds, the paper's protocol (unaugmented
student) with and without KD, and the best KD row on jittered images beside the no-KD student trained on the
same images for as long.
"""

from __future__ import annotations

from tablegen.fidelity_rows import HINTON, Measured, Ref
from tablegen.files import Files

STUDIES = {  # table file: how its rows are named in the fidelity table
    "hinton_800_paper.json": "Hinton MNIST, 320-epoch teacher: ",
    "hinton_800_restart.json": "Hinton MNIST, 320-epoch teacher + 100-epoch warm restart: ",
    "hinton_800_ema.json": "Hinton MNIST, 320-epoch teacher with a weight average (EMA 0.9998): ",
    "hinton_800_ema_students.json": "Hinton MNIST, 320-epoch EMA teacher, students with a weight average too: ",
    "hinton_800_fast.json": "Hinton MNIST, 320-epoch teacher in bf16 with fast dropout masks: ",
}
# table: the table whose teachers it trained further (its teacher's wall time adds that table's)
CONTINUES = {"hinton_800_restart.json": "hinton_800_paper.json"}
# rows given once, under another table: the restart's no-KD students are the earlier table's runs, copied (a
# no-KD student never reads the teacher); the EMA students' teachers are hinton_800_ema's, and their no-KD
# student's count is that table's at both seeds (its notes)
SHARED_ROWS = {"hinton_800_restart.json": {"no-kd"}, "hinton_800_ema_students.json": {"teacher", "no-kd"}}


def _measured(data: dict, row: dict, text: str, table: str, before: float | None) -> Measured:
    """kdedge's number of one study row (a summary_rows entry): its mean over seeds, per-seed values and mean
    train time (`before`: a teacher's seconds of training in the table it continues); the command is the
    study's, or for the teacher the seeds' `kdedge train` commands."""
    teacher = row["kind"] == "teacher"
    trains = [line for line in data["commands"] if line.startswith("kdedge train ")]
    seconds = row["train_seconds_mean"]
    wall = f"{seconds:,.0f} s/run ({'teacher' if teacher else 'student'})"
    if teacher and before is not None:
        wall = f"{seconds:,.0f} s/run (teacher; {seconds + before:,.0f} s with its first training)"
    return Measured(
        row["mean"],
        text,
        " / ".join(f"{value:g}" for value in row["values"]),
        "; ".join(trains) if teacher else data["commands"][-1],
        ", ".join(str(seed) for seed in row["seeds"]),
        wall,
        data,
        table,
    )


def mnist_800_studies(files: Files) -> list[tuple[Ref, Measured]]:
    """The rows of every table in STUDIES, in its order."""
    return [pair for table, what in STUDIES.items() for pair in mnist_800_study(files, table, what)]


def mnist_800_study(files: Files, table: str, what: str) -> list[tuple[Ref, Measured]]:
    """Teacher, paper-protocol student with and without KD, and the best jittered KD student of one table."""
    data = files[table]
    rows = {row["row"]: row for row in data["summary_rows"]}
    jittered = [row for row in rows.values() if row["kind"] == "student" and "jitter" in row["row"]]
    best = min(jittered, key=lambda row: row["mean"])
    versus = f"{best['row']}; the same student without KD {best['baseline_mean']:.1f}"
    earlier = files[CONTINUES[table]]["summary_rows"] if table in CONTINUES else None
    before = next(row["train_seconds_mean"] for row in earlier if row["kind"] == "teacher") if earlier else None
    pairs = [  # (what, the paper's number, the study row, words after kdedge's number)
        ("teacher 784-1200-1200-10", 67, rows["teacher"], ""),
        ("2x800 student without KD", 146, rows["no-kd"], ""),
        ("2x800 student with KD (T 20)", 74, rows["KD"], ""),
        ("2x800 student with KD, best on jittered images", 74, best, f" ({versus})"),
    ]
    pairs = [pair for pair in pairs if pair[2]["row"] not in SHARED_ROWS.get(table, set())]
    return [
        (
            Ref(what + label, paper, "errors", True, HINTON),
            _measured(data, row, f"{row['mean']:.1f} errors{extra}", table, before),
        )
        for label, paper, row, extra in pairs
    ]
