"""kdedge's side of the fidelity table (fidelity.py): each function reads one experiment's result files in
bench/results/ and pairs every reference number (written here, with its source) with kdedge's measured one.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from tablegen.files import ROOT, Files, ResultFileError

HINTON = 'Hinton et al. 2015, "Distilling the Knowledge in a Neural Network"'
MEDMNIST = (
    "MedMNIST v2 (Yang et al. 2023), best test accuracy on RetinaMNIST 28 px (Google AutoML Vision; "
    "its ResNet-18/50 reach 0.493-0.528)"
)
MEDMNIST_ACCURACY = 0.531  # the test accuracy MEDMNIST names


class Ref(NamedTuple):
    """A reference number: `value` in `unit` (nan: none quoted); `lower` when fewer is better (errors)."""

    experiment: str
    value: float
    unit: str
    lower: bool
    source: str


class Measured(NamedTuple):
    """kdedge's number for a reference, and where it came from."""

    value: float | None
    text: str
    per_seed: str
    command: str
    seeds: str
    wall: str
    source: dict
    file: str


def number(text: object, index: int = 0) -> float:
    """The index-th number written in a cell ('210 (131)' -> 210.0, index 1 -> 131.0)."""
    return float(re.findall(r"-?\d+(?:\.\d+)?", str(text).replace(",", ""))[index])


def cell(table: dict, row_start: str, column: str) -> object:
    """The cell of the row whose first cell starts with row_start, in the named column."""
    row = next(r for r in table["rows"] if str(r[0]).startswith(row_start))
    return row[table["columns"].index(column)]


def recipe_seed(recipe: str) -> str:
    """The seed a packaged recipe runs with when the command sets none."""
    text = (ROOT / "kdedge" / "recipes" / f"{recipe}.yaml").read_text()
    found = re.search(r"^seed:\s*(\d+)", text, re.MULTILINE)
    return found.group(1) if found else "0"


def show(value: float, unit: str) -> str:
    """'84 errors', '99.3 errors' (a mean over seeds keeps its decimal), '47.3 % test error', '0.531' (an
    accuracy), '99.54 % test accuracy'."""
    if unit == "errors":
        return f"{value:.0f} errors" if value == round(value) else f"{value:.1f} errors"
    if unit == "accuracy":
        return f"{value:.3f}"
    return f"{round(value, 2):g} {unit}"


def machine_of(result: dict) -> str:
    """A result file's machine in one line: up to its first ';' (the row's own table has the rest)."""
    machine = result["machine"]
    if isinstance(machine, dict):
        return f"{machine['cpu'].split(' (')[0]}, {machine['cores']} cores"
    return str(machine).split(";")[0]


def mnist_800(files: Files) -> list[tuple[Ref, Measured]]:
    """Hinton's teacher and the 2x800 student with and without KD (mnist_hinton_800.json)."""
    name, pairs = "mnist_hinton_800.json", []
    data = files[name]
    for start, command, paper, what in [
        ("teacher", 0, 67, "Hinton MNIST, 160-epoch teacher: teacher 784-1200-1200-10"),
        ("2x800 student, no KD", 2, 146, "Hinton MNIST, 160-epoch teacher: 2x800 student without KD"),
        ("2x800 student, KD", 1, 74, "Hinton MNIST, 160-epoch teacher: 2x800 student with KD"),
    ]:
        errors = number(cell(data, start, "test errors (of 10,000)"))
        wall = f"{number(cell(data, start, 'wall s')):,.0f} s"
        seeds = recipe_seed(data["experiment"]) + " (the recipe's)"
        measured = Measured(errors, f"{errors:.0f} errors", "-", data["commands"][command], seeds, wall, data, name)
        pairs.append((Ref(what, paper, "errors", True, HINTON), measured))
    return pairs


def mnist_800_methods(files: Files) -> list[tuple[Ref, Measured]]:
    """The best of the distillation methods on the 2x800 student, on the same jittered images as the strongest
    no-KD baseline (hinton_800_methods.json, a `kdedge study` table)."""
    name = "hinton_800_methods.json"
    data = files[name]
    column = data["columns"].index
    rows = {row[column("training")]: row for row in data["rows"]}
    methods = [row for key, row in rows.items() if key not in ("teacher", "no KD")]
    best = min(methods, key=lambda row: float(row[column("mean")]))
    no_kd = rows["no KD"]
    mean = float(best[column("mean")])
    text = f"{mean:.1f} errors ({best[column('training')]}; the same student without KD {no_kd[column('mean')]})"
    measured = Measured(
        mean,
        text,
        best[column("test errors per seed")],
        data["commands"][-1],
        ", ".join(str(seed) for seed in range(int(best[column("seeds")]))),
        f"{best[column('train s (mean)')]:,.0f} s/run (student)",
        data,
        name,
    )
    what = "Hinton MNIST, 120-epoch jitter teacher: 2x800 student with KD, best of five methods, jittered images"
    return [(Ref(what, 74, "errors", True, HINTON), measured)]


# (the row's first words in mnist_transfer_sets.json, how the fidelity table names it, its run folders, one
# per seed from seed 0 up: they find the row's commands)
TRANSFER_ROWS = [
    (
        "omit 3, 160-epoch teacher, the recipe",
        "160-epoch teacher (the recipe)",
        ("omit3_t160_s0_lr05_e50", "omit3_t160_s1_lr05_e50", "omit3_t160_s2_lr05_e50"),
    ),
    (
        "only 7 and 8, 160-epoch teacher, the recipe",
        "160-epoch teacher (the recipe)",
        ("only78_t160_s0", "only78_t160_s1", "only78_t160_s2"),
    ),
    (
        "omit 3, 320-epoch teacher, alpha 1.0",
        "320-epoch teacher (alpha 1.0, lr 0.01, 25 epochs)",
        ("omit3_a1", "omit3_s1_a1.0"),
    ),
    ("only 7 and 8, 320-epoch teacher", "320-epoch teacher", ("only78",)),
]
OMIT3 = [  # (column, which number of the cell, the paper's number, what)
    ("before the bias fix", 0, 206, "no 3 in the transfer set, before the bias fix"),
    ("before the bias fix", 1, 133, "no 3, before the bias fix: errors on the 3s"),
    ("after (bias_fix: auto)", 0, 109, "no 3, after the bias fix"),
    ("after (bias_fix: auto)", 1, 14, "no 3, after the bias fix: errors on the 3s"),
]
ONLY78 = [
    ("before the bias fix", 0, 47.3, "only 7s and 8s, before the bias fix"),
    ("after (bias_fix: auto)", 0, 13.2, "only 7s and 8s, after the bias fix"),
]


def transfer_sets(files: Files) -> list[tuple[Ref, Measured]]:
    """The no-3 and the 7-and-8 transfer sets, before and after the bias fix (mnist_transfer_sets.json: a row
    per set, teacher and setting, the mean over its seeds; its commands found by the run folders)."""
    name, pairs = "mnist_transfer_sets.json", []
    data = files[name]
    for start, teacher, folders in TRANSFER_ROWS:
        omit = start.startswith("omit 3")
        per_seed = str(cell(data, start, "per seed: before -> after"))
        commands = [line for line in data["commands"] for f in folders if line.endswith(f"/{f}")]
        wall = cell(data, start, "student s")
        unit = "errors" if omit else "% test error"
        seeds = ", ".join(str(seed) for seed in range(len(folders)))
        for column, index, paper, what in OMIT3 if omit else ONLY78:
            value = number(cell(data, start, column), index)
            measured = Measured(
                value,
                show(value, unit),
                per_seed,
                "; ".join(commands),
                seeds,
                f"{wall:,.0f} s/run (student)",
                data,
                name,
            )
            pairs.append((Ref(f"Hinton MNIST, {teacher}: {what}", paper, unit, True, HINTON), measured))
    return pairs


def sweeps(files: Files) -> list[tuple[Ref, Measured]]:
    """The 2x30 student's >= 20 % fewer errors than without KD, from each teacher (mnist_sweep_2x30*.json)."""
    pairs = []
    for name, teacher in [("mnist_sweep_2x30.json", "an MLP"), ("mnist_sweep_2x30_cnn.json", "a CNN")]:
        data = files[name]
        baseline = number(data["columns"][0].split("no KD:")[1])
        best = min(number(v) for row in data["rows"] for v in row[1:])
        runs = {recipe_seed(data["experiment"]): (best, baseline)}
        for note in data.get("notes", []):  # another seed of the best point, where it was run
            if found := re.search(r"Seed (\d+) of the best point: KD (\d+) vs no KD (\d+)", note):
                runs[found.group(1)] = (float(found.group(2)), float(found.group(3)))
        kd, base = (sum(run[i] for run in runs.values()) / len(runs) for i in (0, 1))
        fewer = 100 * (base - kd) / base
        per_seed = "; ".join(f"{s}: {k:.0f} vs {b:.0f} ({100 * (b - k) / b:.1f} %)" for s, (k, b) in runs.items())
        text = f"{fewer:.1f} % ({kd:.0f} vs {base:.0f} errors{', mean' if len(runs) > 1 else ''}; best point)"
        seeds = ", ".join(runs) + (" (the recipe's)" if len(runs) == 1 else " (the other points: seed 0 only)")
        measured = Measured(fewer, text, per_seed, data["commands"][-1], seeds, "not recorded", data, name)
        source = "the 2x30 student's target (docs/experiments.md section 3; the paper gives none)"
        what = f"Hinton MNIST: 2x30 student from {teacher} teacher, fewer errors than without KD"
        pairs.append((Ref(what, 20, "% fewer errors", False, source), measured))
    return pairs


def cnn_to_mlp(files: Files) -> list[tuple[Ref, Measured]]:
    """The CNN teacher and its MLP student against the recipe's reference accuracies (mnist_cnn_to_mlp.json)."""
    data, pairs = files["mnist_cnn_to_mlp.json"], []
    source = "the cnn_to_mlp_mnist experiment's reference, docs/experiments.md section 4"
    for start, reference, what in [("mnist_cnn teacher", 98.59, "teacher"), ("MLP", 97.31, "MLP student")]:
        accuracy = number(cell(data, start, "test accuracy %"))
        wall = f"{number(cell(data, start, 'train s')):,.0f} s (train)"
        seeds = recipe_seed(data["experiment"]) + " (the recipe's)"
        text = show(accuracy, "% test accuracy")
        measured = Measured(accuracy, text, "-", data["commands"][0], seeds, wall, data, "mnist_cnn_to_mlp.json")
        ref = Ref(f"CNN -> MLP on MNIST: {what}", reference, "% test accuracy", False, source)
        pairs.append((ref, measured))
    return pairs


def retina_command(data: dict, run: str, study: str) -> str:
    """The command line that wrote run folder `run` (seed 0's), else the study file that reproduces it."""
    folder = "/" + re.sub(r"-s0$", "-s$seed", run.rstrip("/").split("/")[-1]) + " "
    return next((line.strip() for line in data["commands"] if folder in line + " "), f"kdedge study {study}")


def retinamnist(files: Files) -> list[tuple[Ref, Measured]]:
    """The best distilled <= 5 M student of each RetinaMNIST attempt against MedMNIST v2's best (retinamnist*.json)."""
    pairs = []
    for name, attempt, study in [
        ("retinamnist.json", "6 epochs per stage", "studies/retinamnist_6_epochs.yaml"),
        ("retinamnist_long.json", "30 epochs per stage", "studies/retinamnist_30_epochs.yaml"),
        ("retinamnist_students.json", "30 epochs, best val epoch, loss and augmentation varied",
         "studies/retinamnist_students.yaml"),
    ]:  # fmt: skip
        data = files[name]
        if data["reference"]["accuracy"] != MEDMNIST_ACCURACY:
            raise ResultFileError(f"{name}: reference {data['reference']['accuracy']} is not MedMNIST v2's")
        students = [r for r in data["rows"] if r["params"] <= 5e6 and "no KD" not in r["row"]]
        best = max(students, key=lambda r: r["test_accuracy_mean"])
        seeds = best["per_seed"]
        last = [s.get("last_epoch_test_accuracy") for s in seeds]
        text = f"{best['test_accuracy_mean']:.3f} (QWK {best['test_qwk_mean']:.3f}; {best['row']}"
        text += f", last epoch {sum(last) / len(last):.3f})" if None not in last else ")"
        minutes = sum(s["train_seconds"] for s in seeds) / len(seeds) / 60
        measured = Measured(
            best["test_accuracy_mean"],
            text,
            " / ".join(f"{s['test_accuracy']:.4f}" for s in seeds),
            retina_command(data, seeds[0]["run"], study),
            ", ".join(str(s["seed"]) for s in seeds),
            f"{minutes:.1f} min/run (student)",
            data,
            name,
        )
        what = f"RetinaMNIST: distilled student <= 5 M params, {attempt}"
        pairs.append((Ref(what, MEDMNIST_ACCURACY, "accuracy", False, MEDMNIST), measured))
    return pairs


def cifar10(files: Files) -> list[tuple[Ref, Measured]]:
    """The AlexNet teacher's >= 55 % target (cifar10_alexnet_teacher.json); the full-scale ResNets, not run."""
    data = files["cifar10_alexnet_teacher.json"]
    summary = data["teacher_30_epochs"]["summary"]
    accuracy = 100 * summary["test_accuracy"]
    teacher = Measured(
        accuracy,
        f"{show(accuracy, '% test accuracy')} ({summary['test_count']:,} test images)",
        "-",
        data["command"],
        recipe_seed("cifar10_alexnet_smallcnn") + " (the recipe's)",
        f"{summary['train_seconds']:,.0f} s (train)",
        data | {"date": data["machine"]["date"], "machine": f"{machine_of(data)}, {data['when']}"},
        "cifar10_alexnet_teacher.json",
    )
    target = "the alpha study's teacher target, docs/cifar10.md"
    resnets = files["cifar10_resnet_subset_table.json"]
    full = Measured(
        None,
        "4,000-image subset only (its own table); the full-data table is one command for a GPU",
        "-",
        resnets["notes"][-1].split(": ", 1)[-1].split(";")[0],
        "-",
        "-",
        resnets,
        "cifar10_resnet_subset_table.json",
    )
    papers = "the papers' accuracies at 200 epochs on 50,000 images (docs/cifar10.md; not quoted here)"
    return [
        (Ref("CIFAR-10 subset: AlexNet teacher", 55, "% test accuracy", False, target), teacher),
        (Ref("CIFAR-10: ResNet18 self-KD, ResNet50 reverse KD at full scale", float("nan"), "", False, papers), full),
    ]


def aptos(files: Files) -> list[tuple[Ref, Measured]]:
    """APTOS 2019: no data here (Kaggle's rules forbid redistributing it): only the latency table exists."""
    data = files["edge_runtimes_aptos224.json"]
    measured = Measured(
        None,
        "no APTOS data here (Kaggle's rules forbid redistributing the photos); latency only, random weights",
        "-",
        "kdedge distill recipes/aptos_swin.yaml (docs/experiments.md section 8)",
        "-",
        "-",
        data,
        "edge_runtimes_aptos224.json",
    )
    source = "no accuracy measured: RetinaMNIST stands in (docs/retinamnist.md)"
    return [(Ref("APTOS 2019: ConvNeXt-T -> Swin-T / edge student", float("nan"), "", False, source), measured)]
