"""Training a study's plan: seed by seed (a finished seed is a complete table), each seed's teachers first,
then its students; a run whose summary.json says finished is read, never retrained, and a stopped one
continues from its saved state. SIGTERM / Ctrl-C stop the run in flight at a step boundary with its state
saved; the same command continues (kdedge.experiments.stopping).

A run that diverges (a non-finite loss) is recorded and the study goes on: its row says so.
"""

from __future__ import annotations

import json
from pathlib import Path

from kdedge.errors import Diverged, InputError
from kdedge.experiments.stopping import Stopped, as_rerun_stop, check_stop
from kdedge.experiments.study.plan import Cell, Plan, TeacherRun
from kdedge.experiments.sweep_results import is_finished
from kdedge.files.atomic import atomic_write_text
from kdedge.files.rundir import RunDir
from kdedge.recipe import Recipe

FAILED = "failed.json"  # STUDY/failed.json: {run folder: the error line} of runs that diverged


def check_plan(plan: Plan, data_root: str | None) -> None:
    """Before anything trains: every checkpoint a run loads from outside the study exists, and every
    student's transfer set suits its data (checked once per data setting)."""
    from kdedge.train.biasfix import check_transfer_set
    from kdedge.train.pipeline import prepare_data

    _check_outside_checkpoints(plan)
    classes: dict[str, int] = {}
    for cell in plan.trained_cells():
        data = json.dumps(cell.recipe.data.model_dump(mode="json"), sort_keys=True)
        if data not in classes:
            classes[data] = prepare_data(cell.recipe, data_root).num_classes
        check_transfer_set(cell.recipe, classes[data])


def _check_outside_checkpoints(plan: Plan) -> None:
    """A teacher.checkpoint / student.checkpoint not trained by the study (teacher.checkpoint=runs/t-s{seed})
    must be there now: found missing at seed 1's first run, the study would have trained seed 0 and
    written that run's folder first."""
    from kdedge.models.weights import weights_path

    ours = plan.teacher_checkpoints()
    for run in [*plan.teachers, *plan.trained_cells()]:
        if is_finished(run.path):
            continue  # read from its folder, never trained again: what it loaded is not needed
        for stage in ("teacher", "student"):
            cfg = getattr(run.recipe, stage)
            if cfg is not None and cfg.checkpoint and cfg.checkpoint not in ours:
                try:
                    weights_path(cfg.checkpoint, stage)
                except InputError as err:
                    raise InputError(f"study: seed {run.seed}: {err}") from None


def run_plan(plan: Plan, data_root: str | None, progress=None) -> dict[str, str]:
    """Train every unfinished run of the plan; returns {run folder: error line} of the runs that diverged
    (also in STUDY/failed.json). Raises Stopped / Interrupted (rerun to continue) on SIGTERM / Ctrl-C."""
    todo = [run for run in _in_order(plan) if not is_finished(run.path)]
    task = progress.add_task(f"study: {len(todo)} runs to train", total=len(todo)) if progress else None
    failed: dict[str, str] = {}
    try:
        for run in todo:
            check_stop(lambda: stopped_study_saved(plan.out))
            if _teacher_failed(run, failed):
                failed[str(run.path)] = "its teacher diverged"
            else:
                error = train_run(run.recipe, run.path, data_root, progress, _logits_file(plan, run))
                if error:
                    failed[str(run.path)] = error
            if task is not None:
                progress.advance(task)
    except (Stopped, KeyboardInterrupt) as err:
        raise as_rerun_stop(err, lambda: stopped_study_saved(plan.out)) from None
    finally:
        _write_failed(plan.out, failed)
    return failed


def _in_order(plan: Plan) -> list[TeacherRun | Cell]:
    """Seed by seed: that seed's teachers, then its cells (in the study's order)."""
    ordered: list[TeacherRun | Cell] = []
    for seed in plan.spec.seeds:
        ordered += [t for t in plan.teachers if t.seed == seed] + [c for c in plan.trained_cells() if c.seed == seed]
    return ordered


def _teacher_failed(run: TeacherRun | Cell, failed: dict[str, str]) -> bool:
    """Does this run load a teacher that diverged in this study?"""
    checkpoint = run.recipe.teacher.checkpoint if run.recipe.teacher else None
    return bool(checkpoint) and any(Path(checkpoint) == Path(path).resolve() for path in failed)


def _logits_file(plan: Plan, run: TeacherRun | Cell) -> Path | None:
    """The students of one study teacher share its cached logits, kept in the teacher's folder (recomputed
    only when a row feeds the teacher other input: kdedge.train.teacher_cache keys them)."""
    checkpoint = run.recipe.teacher.checkpoint if isinstance(run, Cell) and run.recipe.teacher else None
    return Path(checkpoint) / "teacher_logits.safetensors" if checkpoint in plan.teacher_checkpoints() else None


def train_run(
    recipe: Recipe, path: Path, data_root: str | None, progress=None, logits_file: Path | None = None
) -> str | None:
    """Train (or continue) one run into `path`; None when it finished, else the error line of a divergence.
    `logits_file`: where its student keeps the teacher's logits (default RUN/teacher_logits.safetensors)."""
    from kdedge.train.pipeline import run_recipe

    run = RunDir(path).open_for_writing(force=False)
    try:
        run_recipe(recipe, run, data_root, progress=progress, teacher_logits_file=logits_file)
    except Diverged as err:
        return str(err)
    except InputError as err:  # one run's data or weights are wrong: the line names the run
        raise InputError(f"{path}: {err}") from None
    finally:
        run.release()
    return None


def stopped_study_saved(out: Path) -> str:
    """What a stopped study leaves: its finished runs, and the run in flight's last checkpoint."""
    done = sum(1 for summary in out.glob("**/summary.json") if is_finished(summary.parent))
    return f"{out} ({done} finished runs; the run in flight keeps its last checkpoint)"


def _write_failed(out: Path, failed: dict[str, str]) -> None:
    """STUDY/failed.json lists this attempt's failed runs (removed when none failed)."""
    path = out / FAILED
    if failed:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(failed, indent=1) + "\n")
    else:
        path.unlink(missing_ok=True)
