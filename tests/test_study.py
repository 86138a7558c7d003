"""kdedge study: the plan (rows x seeds, one teacher per seed shared by every student and recipe that has it,
one no-KD baseline per setting), a real tiny MNIST study run twice (the second trains nothing), its table
file rendered by the results page, a SIGTERM between runs and the same command continuing, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cli_helpers import TINY, one_error_line, run_kdedge, write_recipe

from kdedge.commands.options import StudyOptions
from kdedge.commands.study import study_spec
from kdedge.errors import InputError
from kdedge.experiments.study.plan import make_plan
from kdedge.experiments.study.spec import parse_variant, spec_from
from kdedge.files.rundir import RunDir
from kdedge.report.results_page import check_table, load_results, section

FAST = ("student.epochs=1", "data.train_limit=300", "data.test_limit=100")


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    return write_recipe(tmp_path / "tiny.yaml")


def sets(*items: str) -> list[str]:
    return [word for item in items for word in ("--set", item)]


def test_a_variant_is_a_name_and_its_set_values() -> None:
    assert parse_variant("dkd: distillation.loss=dkd distillation.temperature=4") == (
        "dkd",
        ("distillation.loss=dkd", "distillation.temperature=4"),
    )
    layers = "at: 'distillation.layers=[{student: a, teacher: b}]'"
    assert parse_variant(layers) == ("at", ("distillation.layers=[{student: a, teacher: b}]",))
    assert parse_variant("kd:") == ("kd", ())
    bad_ones = (("dkd", "expected 'NAME: KEY=VALUE"), ("a/b: seed=1", "letters, digits"), ("x: nokey", "KEY="))
    for bad, message in bad_ones:
        with pytest.raises(InputError, match=message):
            parse_variant(bad)


def test_plan_shares_a_teacher_per_seed_across_rows_and_recipes(tiny: Path, tmp_path: Path) -> None:
    spec = spec_from(
        {
            "recipes": [str(tiny), {"recipe": str(tiny), "set": ["student.model_kwargs.hidden=[8]"], "label": "small"}],
            "seeds": [0, 1],
            "variants": {"kd": [], "T8": ["distillation.temperature=8"], "e2": ["student.epochs=2"]},
        },
        "test",
    )
    plan = make_plan(spec, tmp_path / "study")
    assert [(t.seed, t.recipe.student) for t in plan.teachers] == [(0, None), (1, None)]  # both recipes share it
    rows = [cell.row for cell in plan.cells if cell.entry == "tiny" and cell.seed == 0]
    assert rows == ["kd", "no-kd", "T8", "e2", "no-kd,student.epochs=2"]  # T8's baseline is kd's: planned once
    assert len(plan.cells) == 2 * 2 * 5
    for cell in plan.cells:
        teacher = next(t for t in plan.teachers if t.seed == cell.seed)
        assert cell.recipe.teacher.checkpoint == str(teacher.path.resolve()) and cell.recipe.seed == cell.seed
    by_row = {cell.row: cell for cell in plan.cells if cell.entry == "small" and cell.seed == 1}
    assert by_row["e2"].baseline == "no-kd,student.epochs=2" and by_row["T8"].baseline == "no-kd"
    assert by_row["no-kd"].recipe.distillation.loss == "none" and by_row["e2"].recipe.student.epochs == 2
    assert by_row["kd"].recipe.student.model_kwargs == {"hidden": [8]}
    assert by_row["kd"].path == tmp_path / "study" / "runs" / "small" / "kd" / "seed1"


def test_seed_in_a_checkpoint_loads_each_seeds_own_teacher(tiny: Path, tmp_path: Path) -> None:
    """teacher.checkpoint=.../t-s{seed}: no teacher is planned, and every run of seed N loads t-sN."""
    each = f"teacher.checkpoint={tmp_path}/t-s{{seed}}"
    spec = spec_from({"recipes": [str(tiny)], "seeds": [0, 1], "set": [each]}, "t")
    plan = make_plan(spec, tmp_path / "study")
    assert plan.teachers == ()
    loaded = {(cell.row, cell.seed): cell.recipe.teacher.checkpoint for cell in plan.cells}
    assert loaded == {(row, seed): f"{tmp_path}/t-s{seed}" for row in ("kd", "no-kd") for seed in (0, 1)}


def test_a_variant_without_kd_is_the_baseline_and_a_changed_study_is_refused(tiny: Path, tmp_path: Path) -> None:
    spec = spec_from({"recipes": [str(tiny)], "variants": {"kd": [], "none": ["distillation.loss=none"]}}, "test")
    plan = make_plan(spec, tmp_path / "study")
    assert [(c.row, c.baseline) for c in plan.cells] == [("kd", "none"), ("none", None)]
    kd = plan.cells[0]
    RunDir(kd.path).open_for_writing(force=False).write_recipe(kd.recipe)
    changed = spec_from({"recipes": [str(tiny)], "set": ["student.lr=0.5"]}, "test")
    with pytest.raises(InputError, match=r"kd/seed0 holds a run of another recipe \(student.lr differ\)"):
        make_plan(changed, tmp_path / "study")
    reworded = spec_from({"recipes": [str(tiny)], "set": ["description=words about it, not part of the run"]}, "t")
    make_plan(reworded, tmp_path / "study")  # a new description is the same experiment: its runs are kept
    inert = spec_from({"recipes": [str(tiny)], "set": ["student.step_epochs=2", "student.step_gamma=0.5"]}, "t")
    make_plan(inert, tmp_path / "study")  # step-decay keys under a cosine schedule change nothing


def test_a_self_kd_baseline_is_its_teachers_run(tmp_path: Path) -> None:
    """The student trained alone with the teacher's settings IS the teacher's training: read, not repeated."""
    recipe = tmp_path / "self.yaml"
    recipe.write_text(yaml.safe_dump(TINY | {"student": TINY["teacher"]}))
    plan = make_plan(spec_from({"recipes": [str(recipe)], "seeds": [0, 1]}, "test"), tmp_path / "study")
    baselines = [cell for cell in plan.cells if cell.row == "no-kd"]
    assert [(c.path, c.stage) for c in baselines] == [(t.path, "teacher") for t in plan.teachers]
    assert [cell.row for cell in plan.trained_cells()] == ["kd", "kd"]
    other = make_plan(spec_from({"recipes": [str(recipe)], "set": ["student.lr=0.01"]}, "test"), tmp_path / "b")
    assert [cell.stage for cell in other.cells] == ["student", "student"]  # another schedule: trained


def test_a_baseline_that_another_recipe_trains_as_its_teacher_is_read_from_there(tmp_path: Path) -> None:
    """Reverse KD's student trained alone (a big model) is the big model's self-KD teacher: trained once."""
    big = TINY["teacher"] | {"model_kwargs": {"hidden": [64], "dropout": 0.2}}
    reverse, self_kd = tmp_path / "reverse.yaml", tmp_path / "self.yaml"
    reverse.write_text(yaml.safe_dump(TINY | {"student": big}))  # small teacher -> big student
    self_kd.write_text(yaml.safe_dump(TINY | {"teacher": big, "student": big}))
    plan = make_plan(spec_from({"recipes": [str(reverse), str(self_kd)], "seeds": [0, 1]}, "test"), tmp_path / "s")
    big_runs = {t.seed: t.path for t in plan.teachers if t.entry == "self"}
    for cell in (c for c in plan.cells if c.row == "no-kd"):
        assert (cell.path, cell.stage) == (big_runs[cell.seed], "teacher"), cell.entry
    assert sorted((c.entry, c.seed) for c in plan.trained_cells()) == [
        ("reverse", 0),
        ("reverse", 1),
        ("self", 0),
        ("self", 1),
    ]
    other = make_plan(
        spec_from({"recipes": [str(reverse), str(self_kd)], "set": ["student.lr=0.01"]}, "t"), tmp_path / "o"
    )
    assert {c.entry for c in other.cells if c.row == "no-kd" and c.stage == "student"} == {"reverse", "self"}


def test_study_file_and_command_line_combine(tiny: Path, tmp_path: Path) -> None:
    study = tmp_path / "methods.yaml"
    study.write_text(
        "title: Methods\nrecipes: [tiny.yaml]\nseeds: [0, 1]\nset: [student.epochs=2]\n"
        "variants: {kd: []}\ngrid: {distillation.temperature: [2, 4]}\n"
    )
    options = StudyOptions(study, seeds=(3,), overrides=("data.train_limit=100",), variants=("T8: seed=1",))
    spec = study_spec(options)
    assert spec.recipes[0].recipe == str(tiny.resolve()) and spec.seeds == (3,) and spec.title == "Methods"
    assert spec.set == ("student.epochs=2", "data.train_limit=100") and list(spec.variants) == ["kd", "T8"]
    with pytest.raises(InputError, match="give it alone"):
        study_spec(StudyOptions((study, tiny)))


def test_study_trains_each_teacher_once_and_tabulates_beside_no_kd(tiny: Path, tmp_path: Path) -> None:
    out, copy = tmp_path / "study", tmp_path / "results" / "tiny_study.json"
    args = ["study", tiny, "--seeds", "0", "1", *sets(*FAST), "--variant", "T8: distillation.temperature=8"]
    args += ["--variant", "kd:", "--out", out, "--json", copy]
    code, _, stderr = run_kdedge(*args)
    assert code == 0, stderr
    teachers = sorted(out.glob("teachers/*/seed*/summary.json"))
    assert len(teachers) == 2  # one per seed, for all three rows
    for summary in out.glob("runs/tiny/*/seed*/summary.json"):
        stages = {json.loads(line)["stage"] for line in (summary.parent / "metrics.jsonl").read_text().splitlines()}
        assert stages == {"student"}  # the teacher was loaded, never trained again
    table = json.loads((out / "study.json").read_text())
    rows = {row["row"]: row for row in table["summary_rows"]}
    assert list(rows) == ["teacher", "T8", "no-kd", "kd"] and rows["no-kd"]["kind"] == "baseline"
    for name in ("T8", "kd"):
        paired = [
            100 * (_accuracy(out, name, seed) - _accuracy(out, "no-kd", seed)) for seed in (0, 1)
        ]  # the same seed's baseline: same teacher, initialisation and batch order
        assert rows[name]["vs_baseline_per_seed"] == pytest.approx(paired)
        assert rows[name]["mean"] == pytest.approx(sum(100 * _accuracy(out, name, s) for s in (0, 1)) / 2)
    assert table["commands"][0].startswith(f"kdedge study {tiny} --seeds 0 1 --set student.epochs=1")
    check_table(table, "study.json")  # the results page's format, as written
    assert load_results(copy.parent)[0][0]["rows"] == table["rows"]
    assert "| tiny | T8 |" in "\n".join(section(table | {"id": "x"}))
    before = {path: path.stat().st_mtime_ns for path in out.glob("**/*.safetensors")}
    code, stdout, stderr = run_kdedge(*args)
    assert code == 0 and "0 to train now" in stdout, stderr
    assert {path: path.stat().st_mtime_ns for path in out.glob("**/*.safetensors")} == before


def _accuracy(out: Path, row: str, seed: int) -> float:
    return json.loads((out / "runs" / "tiny" / row / f"seed{seed}" / "summary.json").read_text())["student"][
        "test_accuracy"
    ]


# A child process that runs `kdedge study ARGS` with train_run wrapped: after the teacher and the first student
# it sends SIGTERM to itself. A child, not this process: after a few hundred tests have loaded a dozen native
# runtimes here, a signal delivered to the test process itself segfaulted in the kernel's signal delivery
# (gdb: SIGSEGV inside raise(SIGTERM), no handler frame), while the same test passed on its own.
SIGTERM_AFTER_TWO = """
import os, signal, sys
from kdedge.experiments.study import run as study_run
original, trained = study_run.train_run, []
def then_sigterm(recipe, path, *rest, **kwargs):
    result = original(recipe, path, *rest, **kwargs)
    trained.append(str(path))
    print("trained", path, flush=True)
    if len(trained) == 2:  # after the teacher and the first student
        os.kill(os.getpid(), signal.SIGTERM)
    return result
study_run.train_run = then_sigterm
from kdedge.cli import main
sys.argv = ["kdedge", *sys.argv[1:]]
main()
"""


def test_sigterm_between_runs_stops_and_the_same_command_continues(tiny: Path, tmp_path: Path, monkeypatch) -> None:
    """The stop in a real process (SIGTERM_AFTER_TWO); the same command continued in this one, its trainings
    recorded the same way."""
    from kdedge.experiments.study import run as study_run

    args = ["study", str(tiny), *sets(*FAST), "--out", str(tmp_path / "study"), "--quiet"]
    first = subprocess.run(
        [sys.executable, "-P", "-c", SIGTERM_AFTER_TWO, *args], capture_output=True, text=True, timeout=600
    )
    line = one_error_line(first.stderr)
    assert first.returncode == 143 and line.startswith("stopped by SIGTERM"), (first.returncode, first.stderr)
    assert f"continue with the same command: kdedge study {tiny}" in line and "2 finished runs" in line
    trained = [line.split(" ", 1)[1] for line in first.stdout.splitlines() if line.startswith("trained ")]
    original = study_run.train_run

    def recorded(recipe, path, *rest, **kwargs):
        result = original(recipe, path, *rest, **kwargs)
        trained.append(str(path))
        return result

    monkeypatch.setattr(study_run, "train_run", recorded)
    code, _, err = run_kdedge(*args)
    assert code == 0, err
    assert len(trained) == 3 and len(set(trained)) == 3  # the rest only: nothing finished trained twice


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--metric", "loss"], "--metric 'loss': allowed are test_accuracy"),
        (["--seeds", "x"], "--seeds x: give whole numbers"),
        (["student.epochs=2"], "'student.epochs=2' looks like a recipe override; write --set student.epochs=2"),
        (["--variant", "kd"], "--variant 'kd': expected 'NAME: KEY=VALUE ...'"),
        (["--set", "student.epoch=2"], "unknown key 'student.epoch'"),
        (["--grid", "distillation.alpha"], "--grid 'distillation.alpha': expected KEY=V1,V2"),
    ],
)
def test_bad_input_is_one_line_and_trains_nothing(tiny: Path, tmp_path: Path, extra: list[str], message: str) -> None:
    code, _, stderr = run_kdedge("study", tiny, "--out", tmp_path / "study", *extra)
    assert code == 2 and message in one_error_line(stderr)
    assert not (tmp_path / "study").exists()


def test_a_missing_teacher_of_a_later_seed_is_refused_before_anything_trains(tiny: Path, tmp_path: Path) -> None:
    """teacher.checkpoint=t-s{seed} with t-s1 missing: one line naming seed 1's path, and seed 0 not run."""
    (tmp_path / "t-s0").mkdir()
    (tmp_path / "t-s0" / "teacher.safetensors").write_bytes(b"only its presence is checked before training")
    each = f"teacher.checkpoint={tmp_path}/t-s{{seed}}"
    code, _, stderr = run_kdedge("study", tiny, "--seeds", "0", "1", "--set", each, "--out", tmp_path / "study")
    assert code == 2 and f"study: seed 1: teacher.checkpoint: {tmp_path}/t-s1 does not exist" in one_error_line(stderr)
    assert not (tmp_path / "study").exists()


def test_a_bad_study_file_names_its_key(tmp_path: Path) -> None:
    study = tmp_path / "s.yaml"
    study.write_text("recipes: [hinton_mnist]\nseeds: [0, 0]\nbaselines: false\n")
    code, _, stderr = run_kdedge("study", study, "--out", tmp_path / "out")
    line = one_error_line(stderr)
    assert code == 2 and line.startswith(f"error: {study}: ") and "seeds: " in line and "baselines: unknown key" in line
