"""Alpha study on CIFAR-10: one AlexNet teacher, three small-CNN students at kdedge alpha 1, 0 and 0.5.

The recipe cifar10_alexnet_smallcnn has a `sweep:` section, so `kdedge distill` (or `kdedge sweep`) trains the
teacher ONCE and one student per alpha, and writes the alpha study itself (kdedge.experiments.alpha_study):
alpha_study.csv / .md (train / val / test accuracy under BOTH alpha conventions) and alpha_study_curves.png;
`kdedge report SWEEP` shows them. This script is a thin caller of that library code: it runs the sweep (or
reads a finished one) and prints the table; `--eval-train` replaces the train column (running accuracy of
the last epoch) by the final student's accuracy in eval mode on its training split (loads data and model).

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

from kdedge.experiments import alpha_study
from kdedge.experiments.sweep import run_sweep
from kdedge.recipe import load_recipe, parse_set
from kdedge.report.markdown import sweep_points

RECIPE = "cifar10_alexnet_smallcnn"
markdown_table = alpha_study.markdown_table


def run_study(out: Path, overrides: dict, data_root: str | None = None) -> list[dict]:
    """Run the recipe's sweep (teacher once, a student per alpha) into `out`; return study_rows(out)."""
    recipe = load_recipe(RECIPE, overrides)
    run_sweep(recipe, dict(recipe.sweep.grid), out, data_root)
    return study_rows(out)


def study_rows(sweep_dir: Path) -> list[dict]:
    """One row per finished student of an alpha sweep, in grid order (accuracies as fractions)."""
    grid = json.loads((sweep_dir / "sweep.json").read_text())["grid"]
    return alpha_study.study_rows(*sweep_points(sweep_dir, grid))


def eval_train_accuracy(rows: list[dict], data_root: str | None) -> list[dict]:
    """Rows with train_accuracy = the final student in eval mode on its training split."""
    from kdedge.models import load_run_model
    from kdedge.rundir import RunDir
    from kdedge.train.loop import evaluate
    from kdedge.train.pipeline import make_context, prepare_data

    updated = []
    for row in rows:
        run = RunDir(Path(row["run"]))
        recipe = run.read_recipe()
        bundle = prepare_data(recipe, data_root)
        student, _ = load_run_model(run, "student")
        report = evaluate(student, bundle.train, make_context(recipe, bundle), 1024)
        mode = "the final student in eval mode on its training split"
        updated.append(row | {"train_accuracy": report["accuracy"], "train_accuracy_mode": mode})
    return updated


def plot_curves(rows: list[dict], path: Path) -> Path | None:
    """Train (solid) and val (dashed) loss per epoch, one colour per student."""
    title = "CIFAR-10 alpha study: AlexNet teacher -> small-CNN students"
    return alpha_study.loss_curves_png(rows, path, title)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep-dir", type=Path, help="a finished `kdedge distill` sweep of the recipe")
    parser.add_argument("--out", type=Path, default=Path("runs/alpha_study"), help="run the sweep here")
    parser.add_argument("--set", dest="sets", action="append", default=[], help="recipe override KEY=VALUE")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--eval-train", action="store_true", help="train acc in eval mode (loads the data)")
    args = parser.parse_args(argv)
    if args.sweep_dir:
        out, rows = args.sweep_dir, study_rows(args.sweep_dir)
    else:
        out, rows = args.out, run_study(args.out, parse_set(args.sets), args.data_root)
    if args.eval_train:
        rows = eval_train_accuracy(rows, args.data_root)
        alpha_study.write_tables(out, rows)
    print("\n".join(alpha_study.markdown_section(rows, None, "#")))
    print(f"wrote {out / alpha_study.MARKDOWN_NAME}, {alpha_study.CSV_NAME} and {alpha_study.PNG_NAME}")


if __name__ == "__main__":
    main()
