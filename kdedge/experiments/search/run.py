"""`kdedge search`: cost first (no training), then accuracy by successive halving, then the truth (the
finalists' real files), into one folder:

SEARCH/search.json, search.csv   one row per candidate (kdedge.experiments.search.results), the settings,
                                 the pick and the time split; rewritten after every step
SEARCH/pareto.png                accuracy vs latency, the budget, the pick, the recipe's student
SEARCH/best/                     a copy of the pick's run with its exported file
SEARCH/costs.json                this search's cost measurements (also added to the shared --cost-cache)
SEARCH/teacher/                  the teacher, trained once (unless the recipe names teacher.checkpoint)
SEARCH/teacher_logits/           the teacher's logits, once per input size
SEARCH/candidates/NAME/eN/       one run directory per candidate and number of epochs

Rerunning the same command resumes: measurements come from costs.json, finished trainings are read, a
stopped training continues from its checkpoint. SIGTERM / Ctrl-C stop at the next safe point with all of
that saved (kdedge.experiments.stopping).
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kdedge.data import is_ordinal
from kdedge.errors import InputError
from kdedge.experiments.search import finalists as truth
from kdedge.experiments.search.candidate import CandidateJob, DataMemo, TeacherSource, candidate_recipe
from kdedge.experiments.search.cost import CostSettings, calibration_images, cost_stage
from kdedge.experiments.search.cost_cache import CostCache, default_cache_file, machine_identity, runtime_version
from kdedge.experiments.search.halving import HalvingResult, plan_rungs, run_halving
from kdedge.experiments.search.options import SearchConfig, SearchSetup, prepare
from kdedge.experiments.search.record import earlier_invocations, impossible_message, make_header
from kdedge.experiments.search.results import SearchRecord, build_rows, time_split, write_record
from kdedge.experiments.search.space import Candidate, candidates
from kdedge.experiments.search.trainers import local_trainer, ray_trainer
from kdedge.experiments.stopping import Stopped, as_rerun_stop, check_stop, graceful_stop
from kdedge.files.rundir import RunDir


@dataclass
class SearchResult:
    """What a search found: its folder, rows (best first), the pick (or the closest miss), SEARCH/best."""

    folder: Path
    rows: list[dict[str, Any]]
    pick: str | None
    closest: str | None
    best_dir: Path | None
    best_file: str | None


def run_search(options: SearchConfig | SearchSetup, progress=None) -> SearchResult:
    """Run (or resume) the search `options` describes, given as its config or as the SearchSetup that
    prepare() made of it (the command checks its input first, before torch loads); see the module docstring."""
    from kdedge.train.prepare import check_stages_fit_data, prepare_data

    setup = options if isinstance(options, SearchSetup) else prepare(options)
    bundle = prepare_data(setup.recipe, setup.options.data_root)  # bad data: one line before anything is written
    check_stages_fit_data(setup.recipe, bundle)
    return Search(setup, bundle, progress).run()


class Search:
    """One search's state while it runs: the candidates, what each stage measured, the time split."""

    def __init__(self, setup: SearchSetup, bundle, progress=None) -> None:
        self.setup, self.options, self.folder = setup, setup.options, setup.folder
        self.bundle, self.progress = bundle, progress
        self.started, self.wall_started = time.monotonic(), time.strftime("%Y-%m-%dT%H:%M:%S")
        base = setup.recipe.student
        own = Candidate(_own_label(setup, base.model), base.model, bundle.image_size, dict(base.model_kwargs), own=True)
        self.candidates = candidates(setup.space, bundle.image_size, own)
        halving = setup.space.halving
        self.val_size = None if bundle.val is not None else max(1, round(halving.val_fraction * len(bundle.train)))
        self.costs: dict[str, dict[str, Any]] = {}
        self.halving: HalvingResult | None = None
        self.final: dict[str, dict[str, Any]] = {}
        self.teacher: TeacherSource | None = None
        self.record = SearchRecord(make_header(setup, bundle, self.val_size))
        self._calibration: dict[int, np.ndarray] = {}
        self.data = DataMemo()  # each input size's data loaded once, for every candidate trained here
        self.truth_seconds = 0.0
        self.earlier_invocations: list[dict[str, Any]] = []  # of this search, stopped and rerun

    # -- the stages ------------------------------------------------------------------------------------
    def run(self) -> SearchResult:
        self.earlier_invocations = earlier_invocations(self.folder, self.record.header)
        lock = RunDir(self.folder).open_for_writing(force=False)
        ended = "error"
        try:
            with graceful_stop():
                try:
                    self._stages()
                    ended = "finished"
                except (Stopped, KeyboardInterrupt) as err:
                    ended = "stopped"
                    raise as_rerun_stop(err, self.saved) from None
        finally:
            self.save(ended)
            lock.release()
        return self._result()

    def _stages(self) -> None:
        self.measure_costs()
        survivors = [
            c for c in self.candidates if self.costs[c.name]["status"] == "ok" and not self.costs[c.name]["misses"]
        ]
        if not survivors:
            raise InputError(impossible_message(self.costs, self.setup.budget, self.setup.target.name, self.folder))
        self.save("running")
        self.teacher = self.obtain_teacher()
        self.train(survivors)
        self.save("running")
        self.measure_finalists()
        self.measure_seeds()

    def measure_costs(self) -> None:
        options, target = self.options, self.setup.target
        settings = CostSettings(
            target,
            self.setup.budget,
            options.threads,
            options.batch,
            options.seconds,
            num_classes=self.bundle.num_classes,
            in_channels=self.bundle.in_channels,
            int8_scheme=self.setup.recipe.export.int8_scheme,
        )
        context = {
            "target": target.name,
            "threads": options.threads,
            "batch": options.batch,
            "seconds": options.seconds,
        }
        context |= {"machine": machine_identity(options.threads), "runtime": runtime_version(target.runtime)}
        context |= {
            "classes": self.bundle.num_classes,
            "channels": self.bundle.in_channels,
            "int8": settings.int8_scheme,
        }
        shared = [options.cost_cache or default_cache_file()] if options.use_cost_cache else []
        cache = CostCache([self.folder / "costs.json", *shared], context)
        cost_stage(self.candidates, settings, cache, self.calibration, self.check_stop, self.progress, self.costs)

    def obtain_teacher(self) -> TeacherSource | None:
        """The recipe's teacher.checkpoint, else SEARCH/teacher trained once (kdedge.experiments.sweep)."""
        from kdedge.experiments.sweep import shared_teacher

        weights = shared_teacher(self.setup.recipe, self.folder, self.options.data_root, self.progress)
        if weights is None:
            return None
        from kdedge.models.weights import weights_path

        path = weights_path(weights, "teacher")
        return TeacherSource(str(path), self.bundle.image_size, tuple(self.bundle.mean), tuple(self.bundle.std))

    def train(self, survivors: list[Candidate]) -> None:
        halving = self.setup.space.halving
        rungs = plan_rungs(len(survivors), self.setup.recipe.student.epochs, halving.eta, halving.finalists)
        self.record.header["rungs"] = [asdict(r) for r in rungs]
        latency = {name: c.get(self.setup.budget.latency_key) for name, c in self.costs.items()}
        keep = frozenset(c.name for c in survivors if c.own)  # the recipe's student, when within budget
        if self.options.ray is not None:
            with ray_trainer(self.job, self.options.ray, self.time_left, self.check_stop, self.progress) as trainer:
                self.halving = run_halving(survivors, rungs, trainer, latency, halving.finalists, self.time_left, keep)
        else:
            trainer = local_trainer(self.job, self.time_left, self.check_stop, self.progress, self.data)
            self.halving = run_halving(survivors, rungs, trainer, latency, halving.finalists, self.time_left, keep)

    def measure_finalists(self) -> None:
        started = time.perf_counter()
        settings = self.truth_settings()
        runs = {name: self.run_dir(name, self._epochs_reached(name)).resolve() for name in self.halving.finalists}
        self.final = truth.truth_stage(runs, settings, self.check_stop, self.progress)
        self.truth_seconds += time.perf_counter() - started
        self.record.pick, self.record.closest = truth.pick(self.final, self.setup.budget)
        if self.record.pick is not None:
            note = f"{self.record.pick}: the pick of the search in {self.folder} (search.json, search.csv)"
            truth.copy_best(runs[self.record.pick], self.folder / "best", note)

    def measure_seeds(self) -> None:
        """--seeds N: the pick and the recipe's own student at N seeds each (kdedge.experiments.search.seeds)."""
        from kdedge.experiments.search.seeds import seed_runs

        recipe, pick = self.setup.recipe, self.record.pick
        if self.options.seeds < 2 or pick is None:
            return
        by_name = {c.name: c for c in self.candidates}
        own = next(c for c in self.candidates if c.own)
        chosen = {"pick": by_name[pick]} | ({"own": own} if own.name != pick else {})
        seeds = [recipe.seed + k for k in range(self.options.seeds)]
        full = recipe.student.epochs
        make = lambda candidate, seed: self.job(candidate, full, seed)  # noqa: E731
        started = time.perf_counter()
        self.record.seeds = seed_runs(chosen, seeds, make, self.truth_settings(), self.check_stop, self.data)
        self.truth_seconds += time.perf_counter() - started  # their trainings are counted in train_s too

    # -- helpers ---------------------------------------------------------------------------------------
    def truth_settings(self) -> truth.TruthSettings:
        options = self.options
        return truth.TruthSettings(
            self.setup.target, self.setup.budget, options.threads, options.batch, options.seconds, options.data_root
        )

    def job(self, candidate: Candidate, epochs: int, seed: int | None = None) -> CandidateJob:
        """What trains `candidate` for `epochs` (here or on Ray); `seed`: another seed (--seeds)."""
        weights = self.teacher.weights if self.teacher else None
        other = None if seed in (None, self.setup.recipe.seed) else seed
        recipe = candidate_recipe(self.setup.recipe, candidate, epochs, weights, self.val_size, other)
        logits = self.folder / "teacher_logits" / f"{candidate.image_size}px{'' if other is None else f'-seed{other}'}"
        run_dir = self.run_dir(candidate.name, epochs, other)
        return CandidateJob(
            candidate.name,
            epochs,
            recipe.to_dict(),
            str(run_dir),
            self.teacher,
            str(logits.resolve()) + ".safetensors",
            self.options.data_root,
        )

    def run_dir(self, name: str, epochs: int, seed: int | None = None) -> Path:
        """SEARCH/candidates/NAME/eEPOCHS, or SEARCH/seeds/NAME/seedS for another seed."""
        if seed is not None:
            return self.folder / "seeds" / name / f"seed{seed}"
        return self.folder / "candidates" / name / f"e{epochs}"

    def _epochs_reached(self, name: str) -> int:
        index = max(self.halving.reached[name])
        return self.halving.rungs[index].epochs

    def calibration(self, side: int) -> np.ndarray:
        """Real training images at `side` px for the cost stage's int8 ranges (kept per side)."""
        if side not in self._calibration:
            self._calibration[side] = calibration_images(self.setup.recipe, side, self.options.data_root, self.data)
        return self._calibration[side]

    def time_left(self) -> bool:
        hours = self.options.hours
        return hours is None or time.monotonic() - self.started < hours * 3600

    def check_stop(self) -> None:
        check_stop(self.saved)

    def saved(self) -> str:
        trained = len(list(self.folder.glob("candidates/*/*/student.safetensors")))
        return (
            f"{self.folder / 'search.json'} with {len(self.costs)} cost measurements and {trained} finished "
            "trainings (a training in flight keeps its last checkpoint)"
        )

    def save(self, ended: str) -> None:
        """search.json / search.csv (and, when the search stops or ends, pareto.png) as they stand now."""
        from kdedge.experiments.search.plot import write_plot

        record, rungs = self.record, self.halving.rungs if self.halving else []
        run_of = {(c.name, r.epochs): f"candidates/{c.name}/e{r.epochs}" for c in self.candidates for r in rungs}
        graded = is_ordinal(self.bundle.name)
        record.rows = build_rows(self.candidates, self.costs, self.halving, self.final, run_of, record.pick, graded)
        now = {"started": self.wall_started, "wall_s": round(time.monotonic() - self.started, 1), "ended": ended}
        now["load_avg_1m"] = round(os.getloadavg()[0], 2)  # at the end: timings beside the load they ran under
        record.header["invocations"] = [*self.earlier_invocations, now]
        record.time = time_split(self.folder, self.costs, self.truth_seconds, record.header["invocations"])
        record.finished = ended == "finished"
        write_record(self.folder, record)
        if ended != "running" and self.costs:
            write_plot(record.rows, record.header, self.folder / "pareto.png", record.seeds)

    def _result(self) -> SearchResult:
        pick = self.record.pick
        best = self.folder / "best" if pick else None
        target = self.setup.target
        best_file = str(truth.target_file(best, target, self.options.batch)) if best else None
        return SearchResult(self.folder, self.record.rows, pick, self.record.closest, best, best_file)


def _own_label(setup: SearchSetup, model: str) -> str:
    """The table's name for the recipe's own student: its model name, unless a family of the space is
    called that (then `<model>_recipe`)."""
    return f"{model}_recipe" if model in {f.label for f in setup.space.families} else model
