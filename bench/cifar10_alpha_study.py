"""Alpha study on CIFAR-10: one AlexNet teacher, three small-CNN students at kdedge alpha 1, 0 and 0.5.

The recipe cifar10_alexnet_smallcnn has a `sweep:` section, so `kdedge distill` (or `kdedge sweep`) trains the
teacher ONCE and one student per alpha, and writes the alpha study itself (kdedge.report.alpha_study):
alpha_study.csv / .md (train / val / test accuracy under BOTH alpha conventions) and alpha_study_curves.png;
`kdedge report SWEEP` shows them. This script is a thin caller of that library code: it runs the sweep (or
reads a finished one) and prints the table; `--eval-train` replaces the train column (running accuracy of
the last epoch) by the final student's accuracy in eval mode on its training split (loads data and model).

    KDEDGE_DATA=../shared/data .venv/bin/kdedge distill cifar10_alexnet_smallcnn --out runs/alpha_sweep \
        --set data.train_limit=600 --set teacher.epochs=2 --set student.epochs=6
    KDEDGE_DATA=../shared/data .venv/bin/python bench/cifar10_alpha_study.py --sweep-dir runs/alpha_sweep

Several --sweep-dir (the same study at other seeds) give one table with a seed column, a mean over seeds
per alpha, and one PNG of every student (--plot), and --json writes the rows and means.

kdedge's alpha weights the TEACHER (soft) term; the study's alpha weights the HARD-label term:
study alpha = 1 - kdedge alpha.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from kdedge.experiments.sweep import run_sweep
from kdedge.recipe import load_recipe, parse_set
from kdedge.report import alpha_study
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


def seed_rows(sweep_dirs: list[Path]) -> list[dict]:
    """Rows of several sweeps of the study, each with the seed its students were trained with."""
    from kdedge.files.rundir import RunDir

    rows = []
    for sweep_dir in sweep_dirs:
        for row in study_rows(sweep_dir):
            rows.append(row | {"seed": RunDir(Path(row["run"])).read_recipe().seed})
    return rows


def mean_rows(rows: list[dict]) -> list[dict]:
    """Per kdedge alpha: mean and spread (max - min) over seeds of train / val / test accuracy."""
    means = []
    for alpha in dict.fromkeys(row["kdedge_alpha"] for row in rows):
        group = [row for row in rows if row["kdedge_alpha"] == alpha]
        mean = {
            "kdedge_alpha": alpha,
            "study_alpha": group[0]["study_alpha"],
            "meaning": group[0]["meaning"],
            "seeds": [row.get("seed") for row in group],
        }
        for key in ("train_accuracy", "val_accuracy", "test_accuracy"):
            values = [row[key] for row in group if row[key] is not None]
            mean[key] = sum(values) / len(values) if values else None
            mean[key + "_spread"] = max(values) - min(values) if len(values) > 1 else None
        means.append(mean)
    return means


def mean_table(means: list[dict]) -> str:
    """Markdown: one line per alpha, both conventions, mean (max - min) over seeds, in %."""
    lines = [
        "| kdedge alpha (teacher-term weight) | study alpha (hard-label weight) | meaning | seeds | "
        "train acc % | val acc % | test acc % |",
        "| ---: | ---: | :--- | ---: | ---: | ---: | ---: |",
    ]
    for mean in means:
        cells = []
        for key in ("train_accuracy", "val_accuracy", "test_accuracy"):
            spread = mean[key + "_spread"]
            cells.append(
                "n/a"
                if mean[key] is None
                else f"{100 * mean[key]:.1f}" + ("" if spread is None else f" ({100 * spread:.1f})")
            )
        lines.append(
            f"| {mean['kdedge_alpha']:g} | {mean['study_alpha']:g} | {mean['meaning']} | "
            f"{len(mean['seeds'])} | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines)


def eval_train_accuracy(rows: list[dict], data_root: str | None) -> list[dict]:
    """Rows with train_accuracy = the final student in eval mode on its training split."""
    from kdedge.files.rundir import RunDir
    from kdedge.train.evaluation import evaluate
    from kdedge.train.pipeline import make_context, prepare_data

    updated = []
    for row in rows:
        run = RunDir(Path(row["run"]))
        recipe = run.read_recipe()
        bundle = prepare_data(recipe, data_root)
        student, _ = run.load_model("student")
        report = evaluate(student, bundle.train, make_context(recipe, bundle), 1024)
        mode = "the final student in eval mode on its training split"
        updated.append(row | {"train_accuracy": report["accuracy"], "train_accuracy_mode": mode})
    return updated


def plot_curves(rows: list[dict], path: Path) -> Path | None:
    """Train (solid) and val (dashed) loss and accuracy per epoch, one colour per student."""
    title = "CIFAR-10 alpha study: AlexNet teacher -> small-CNN students"
    return alpha_study.loss_curves_png(rows, path, title)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sweep-dir",
        type=Path,
        action="append",
        help="a finished `kdedge distill` sweep of the recipe (repeat for other seeds)",
    )
    parser.add_argument("--plot", type=Path, help="one PNG of every student's curves (several sweeps)")
    parser.add_argument("--json", type=Path, help="write the rows (and means over seeds) here")
    parser.add_argument("--out", type=Path, default=Path("runs/alpha_study"), help="run the sweep here")
    parser.add_argument("--set", dest="sets", action="append", default=[], help="recipe override KEY=VALUE")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--eval-train", action="store_true", help="train acc in eval mode (loads the data)")
    args = parser.parse_args(argv)
    if args.sweep_dir and len(args.sweep_dir) > 1:
        several_seeds(args)
        return
    if args.sweep_dir:
        out, rows = args.sweep_dir[0], study_rows(args.sweep_dir[0])
    else:
        out, rows = args.out, run_study(args.out, parse_set(args.sets), args.data_root)
    if args.eval_train:
        rows = eval_train_accuracy(rows, args.data_root)
        alpha_study.write_tables(out, rows)
    print("\n".join(alpha_study.markdown_section(rows, None, "#")))
    print(f"wrote {out / alpha_study.MARKDOWN_NAME}, {alpha_study.CSV_NAME} and {alpha_study.PNG_NAME}")


def several_seeds(args: argparse.Namespace) -> None:
    """The study over several sweeps: per-seed table, mean table, one PNG, optional JSON."""
    rows = seed_rows(args.sweep_dir)
    means = mean_rows(rows)
    print("\n".join(alpha_study.markdown_section(rows, None, "#")))
    print("\nMean over seeds (max - min in brackets):\n")
    print(mean_table(means))
    if args.plot:
        plot_curves(rows, args.plot)
        print(f"wrote {args.plot}")
    if args.json:
        from cifar10_train_throughput import machine  # bench/ is on sys.path when run as a script

        result = {"command": " ".join(sys.argv), "machine": machine(), "rows": rows, "means": means}
        args.json.write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
