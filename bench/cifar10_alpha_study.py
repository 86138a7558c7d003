"""Alpha study on CIFAR-10: one AlexNet teacher, three small-CNN students at kdedge alpha 1, 0 and 0.5.

The recipe cifar10_alexnet_smallcnn has a `sweep:` section, so `kdedge distill` trains the teacher ONCE and
one student per alpha (kdedge.sweep). This script reads that sweep directory (or runs the sweep itself, in
process) and adds what the sweep table lacks: train (eval mode, on the student's training split), val and
test accuracy per student under BOTH alpha conventions, and one PNG of the loss curves.

    KDEDGE_DATA=../shared/data .venv/bin/kdedge distill cifar10_alexnet_smallcnn --out runs/alpha_sweep \
        --set data.train_limit=600 --set teacher.epochs=2 --set student.epochs=6
    KDEDGE_DATA=../shared/data .venv/bin/python bench/cifar10_alpha_study.py --sweep-dir runs/alpha_sweep

kdedge's alpha weights the TEACHER (soft) term; the study's alpha weights the HARD-label term:
study alpha = 1 - kdedge alpha.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

from kdedge.checkpoint import RunDir, load_run_model  # noqa: E402
from kdedge.pipeline import make_context, prepare_data  # noqa: E402
from kdedge.recipe import load_recipe, parse_set  # noqa: E402
from kdedge.sweep import grid_points, point_name, run_sweep  # noqa: E402
from kdedge.train import evaluate  # noqa: E402

RECIPE = "cifar10_alexnet_smallcnn"


def run_study(out: Path, overrides: dict, data_root: str | None = None) -> list[dict]:
    """Run the recipe's sweep (teacher once, a student per alpha) into `out`; return study_rows(out)."""
    recipe = load_recipe(RECIPE, overrides)
    run_sweep(recipe, dict(recipe.sweep.grid), out, data_root)
    return study_rows(out, data_root)


def study_rows(sweep_dir: Path, data_root: str | None = None) -> list[dict]:
    """One row per student of a finished alpha sweep, in grid order (accuracies as fractions)."""
    meta = json.loads((sweep_dir / "sweep.json").read_text())
    rows = []
    for point in grid_points(meta["grid"]):
        run = RunDir(sweep_dir / "points" / point_name(point))
        recipe = run.read_recipe()
        bundle = prepare_data(recipe, data_root)
        student, _ = load_run_model(run, "student")
        train_acc = evaluate(student, bundle.train, make_context(recipe, bundle), 1024)["accuracy"]
        summary = run.read_summary()
        alpha = recipe.distillation.soft_weight
        rows.append({"kdedge_alpha": alpha, "study_alpha": round(1 - alpha, 6), "train_accuracy": train_acc,
                     "val_accuracy": summary["student"].get("val_accuracy"),
                     "test_accuracy": summary["student"]["test_accuracy"],
                     "teacher_test_accuracy": summary["teacher"]["test_accuracy"], "run": str(run.path),
                     "curves": [r for r in run.read_metrics() if r["stage"] == "student"]})  # fmt: skip
    return rows


def markdown_table(rows: list[dict]) -> str:
    lines = ["| kdedge alpha (teacher-term weight) | study alpha (hard-label weight) | train acc % "
             "| val acc % | test acc % |", "| ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
    pct = lambda v: "n/a" if v is None else f"{100 * v:.1f}"  # noqa: E731
    for row in rows:
        lines.append(f"| {row['kdedge_alpha']:g} | {row['study_alpha']:g} | {pct(row['train_accuracy'])} | "
                     f"{pct(row['val_accuracy'])} | {pct(row['test_accuracy'])} |")  # fmt: skip
    lines.append(f"\nteacher (alexnet_cifar) test accuracy: {pct(rows[0]['teacher_test_accuracy'])} %")
    return "\n".join(lines)


def plot_curves(rows: list[dict], path: Path) -> None:
    """Per epoch, per student: training objective, validation CE loss, train (running) / val accuracy."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for row in rows:
        curve = row["curves"]
        epochs = [r["epoch"] for r in curve]
        label = f"kdedge alpha {row['kdedge_alpha']:g} (study {row['study_alpha']:g})"
        (line,) = axes[0].plot(epochs, [r["train_loss"] for r in curve], marker="o", label=label)
        color = line.get_color()
        axes[1].plot(epochs, [r.get("val_loss", float("nan")) for r in curve], marker="o", color=color)
        axes[2].plot(epochs, [100 * r["train_accuracy"] for r in curve], linestyle="--", color=color)
        val_accuracy = [100 * r.get("val_accuracy", float("nan")) for r in curve]
        axes[2].plot(epochs, val_accuracy, marker="o", color=color)
    axes[0].set(title="train loss (the objective: differs per alpha)", xlabel="epoch", ylabel="loss")
    axes[1].set(title="validation cross-entropy", xlabel="epoch", ylabel="loss")
    axes[2].set(title="accuracy: train (dashed, running) / val (solid)", xlabel="epoch", ylabel="%")
    axes[0].legend(fontsize=8)
    for axis in axes:
        axis.grid(alpha=0.3)
    fig.suptitle("CIFAR-10 alpha study: AlexNet teacher -> small CNN students")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep-dir", type=Path, help="a finished `kdedge distill` sweep of the recipe")
    parser.add_argument("--out", type=Path, default=Path("runs/alpha_study"), help="run the sweep here")
    parser.add_argument("--set", dest="sets", action="append", default=[], help="recipe override KEY=VALUE")
    parser.add_argument("--data-root", default=None)
    args = parser.parse_args(argv)
    if args.sweep_dir:
        args.out, rows = args.sweep_dir, study_rows(args.sweep_dir, args.data_root)
    else:
        rows = run_study(args.out, parse_set(args.sets), args.data_root)
    table = markdown_table(rows)
    print(table)
    (args.out / "alpha_table.md").write_text(table + "\n")
    (args.out / "alpha_rows.json").write_text(json.dumps([{k: v for k, v in r.items() if k != "curves"}
                                                          for r in rows], indent=2))  # fmt: skip
    plot_curves(rows, args.out / "alpha_curves.png")
    print(f"wrote {args.out / 'alpha_table.md'} and {args.out / 'alpha_curves.png'}")


if __name__ == "__main__":
    main()
