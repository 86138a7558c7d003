"""How much of a transfer-set student's gap is the bias shift, and how much the student itself?

Hinton et al. (2015) raised the missing class's output bias by 3.5, a value they tuned on the TEST set;
kdedge's `bias_fix: auto` fits the shift without labels (kdedge.train.biasfix). This scan takes a finished
transfer-set run (one with RUN/student_unfixed.safetensors), computes the unfixed student's test logits once
and counts its test errors at every shift from 0 to --max in steps of --step: the best shift on the test
set is the paper's way of choosing (an oracle, not a result one may report as the student's accuracy), and
the row at the run's fitted shift must equal its summary.json (checked: exits 1 otherwise).

    python bench/bias_shift_scan.py RUN [--max 6] [--step 0.05] [--png FILE]

Prints a table (shift, errors, errors on the missing classes, on the others) at the fitted shift, the
paper's 3.5 and the test-best shift, and writes a PNG of errors against shift.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from kdedge.files.rundir import RunDir
from kdedge.models.weights import load_weights_into
from kdedge.recipe import Recipe
from kdedge.train.biasfix import missing_classes
from kdedge.train.context import Context
from kdedge.train.evaluation import predict_logits
from kdedge.train.prepare import prepare_data

PAPER_SHIFT = 3.5  # Hinton et al. 2015, section 3 (omitting 3): tuned on the test set


def unfixed_test_logits(run: RunDir, recipe: Recipe) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """(test logits (N, C) of the student before the bias fix, test labels (N,), the missing classes)."""
    bundle = prepare_data(recipe, None, run.path)
    model, _ = run.load_model("student")  # the recipe's student, built for the run's data
    load_weights_into(model, run.path / "student_unfixed.safetensors", "student")  # its weights before the fix
    ctx = Context(device=torch.device("cpu"), mean=bundle.mean, std=bundle.std)
    return (
        predict_logits(model, bundle.test.images, ctx),
        bundle.test.labels,
        missing_classes(recipe, bundle.num_classes),
    )


def errors_at(logits: torch.Tensor, labels: torch.Tensor, missing: list[int], shift: float) -> tuple[int, int]:
    """(test errors, errors on images of the missing classes) after adding `shift` to the missing logits."""
    shifted = logits.clone()
    shifted[:, missing] += shift
    wrong = shifted.argmax(1) != labels
    return int(wrong.sum()), int((wrong & torch.isin(labels, torch.tensor(missing))).sum())


def plot(rows: list[tuple[float, int, int]], marks: dict[str, float], title: str, path: Path) -> None:
    """Errors (all, missing classes, the others) against the shift, with vertical lines at `marks`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shifts = [r[0] for r in rows]
    fig, ax = plt.subplots(figsize=(9, 4))
    ax.plot(shifts, [r[1] for r in rows], label="all test errors", color="black")
    ax.plot(shifts, [r[2] for r in rows], label="on the missing classes", color="tab:red")
    ax.plot(shifts, [r[1] - r[2] for r in rows], label="on the other classes", color="tab:blue")
    for (name, value), style in zip(marks.items(), ("--", ":", "-."), strict=False):
        ax.axvline(value, color="gray", linestyle=style, label=f"{name}: {value:g}")
    ax.set(xlabel="bias shift added to the missing classes' logits", ylabel="test errors (of 10,000)", title=title)
    ax.set_ylim(0, min(600, max(r[1] for r in rows)))
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--max", type=float, default=6.0)
    parser.add_argument("--step", type=float, default=0.05)
    parser.add_argument("--png", type=Path, default=None)
    args = parser.parse_args()
    run = RunDir(args.run)
    recipe, summary = run.read_recipe(), run.read_summary()
    logits, labels, missing = unfixed_test_logits(run, recipe)
    fitted = summary["student_bias_fixed"]["bias_shift"]
    steps = int(round(args.max / args.step))
    rows = [(round(i * args.step, 4), *errors_at(logits, labels, missing, i * args.step)) for i in range(steps + 1)]
    best = min(rows, key=lambda r: (r[1], r[0]))
    marks = {"fitted (auto)": fitted, "paper (no 3)": PAPER_SHIFT, "test-best": best[0]}
    print(f"{args.run}: missing classes {missing}; unfixed {rows[0][1]} errors ({rows[0][2]} on them)")
    print("| shift | test errors | on the missing classes | on the others |\n|---|---:|---:|---:|")
    counts = {name: errors_at(logits, labels, missing, shift) for name, shift in marks.items()}
    for name, (total, on_missing) in counts.items():
        print(f"| {name} {marks[name]:g} | {total} | {on_missing} | {total - on_missing} |")
    recorded = summary["student_bias_fixed"]["test_errors"]
    if counts["fitted (auto)"][0] != recorded:
        print(f"MISMATCH: summary.json says {recorded} errors at the fitted shift", file=sys.stderr)
        return 1
    if args.png:
        plot(rows, marks, f"{recipe.name} ({args.run.name}): test errors by bias shift", args.png)
        print(f"wrote {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
