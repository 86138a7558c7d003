"""`kdedge eval RUN`: re-score a run's saved models on its recipe's test set."""

from __future__ import annotations

import json
from pathlib import Path

from kdedge.commands.options import EvalOptions
from kdedge.files.rundir import RunDir, remembered_data_root
from kdedge.ui.console import print_table, summary_table, table_width


def evaluate_run_dir(path: Path, data_root: str | None) -> dict:
    """{'data': ..., 'teacher': {...}, 'student': {...}} like summary.json, freshly measured."""
    run = RunDir(path)
    recipe = run.read_recipe()  # not a run: said before torch loads
    from kdedge.train.pipeline import make_context, prepare_data, stage_summary

    bundle = prepare_data(recipe, remembered_data_root(run.read_summary(), data_root), run.path)
    ctx = make_context(recipe, bundle)
    summary: dict = {"data": run.read_summary().get("data", {})}
    for stage in ("teacher", "student"):
        if getattr(recipe, stage) is None or not run.weights(stage).is_file():
            continue
        model, _ = run.load_model(stage)
        summary[stage] = stage_summary(model.to(ctx.device), bundle, ctx, getattr(recipe, stage), {})
    return summary


def evaluate_command(options: EvalOptions) -> dict:
    """Re-evaluate and print the table (or JSON) of the fresh numbers."""
    summary = evaluate_run_dir(options.run_dir, options.data_root)
    if options.as_json:
        print(json.dumps(summary, indent=2))
    else:
        width = table_width()
        print_table(summary_table(summary, f"{options.run_dir}: re-evaluated", width), width)
    return summary
