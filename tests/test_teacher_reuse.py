"""kdedge.commands.teacher_reuse: a long teacher training is said before it starts, with the checkpoint of an
earlier run that trained the same teacher."""

from __future__ import annotations

from pathlib import Path


def test_teacher_notice_names_an_earlier_run_with_the_same_teacher(tmp_path: Path) -> None:
    """`kdedge distill hinton_mnist --set student.epochs=5` after a hinton_mnist run: the note names that
    run's teacher.checkpoint; without one, a long teacher is said as such; a recipe that loads its teacher,
    or a short teacher, gets no note."""
    from kdedge.commands.teacher_reuse import teacher_notice
    from kdedge.files.rundir import RunDir
    from kdedge.recipe import load_recipe

    runs = tmp_path / "runs"
    first = RunDir(runs / "hinton_mnist")
    first.path.mkdir(parents=True)
    first.write_recipe(load_recipe("hinton_mnist"))
    again = load_recipe("hinton_mnist", {"student.epochs": 5})
    assert "the teacher trains first (50 epochs over 60,000 images, the long part)" in teacher_notice(
        again, 60_000, runs / "try1", runs
    )  # recipe.yaml only: no trained teacher there yet
    (first.path / "teacher.safetensors").write_bytes(b"weights")
    note = teacher_notice(again, 60_000, runs / "try1", runs)
    assert note.endswith(f"add --set teacher.checkpoint={first.path} to reuse it")
    other = load_recipe("hinton_mnist", {"teacher.epochs": 10})  # another teacher: not that one
    assert first.path.name not in (teacher_notice(other, 60_000, runs / "try1", runs) or "")
    assert teacher_notice(again, 60_000, first.path, runs).startswith("note: the teacher trains first")
    loads = load_recipe("hinton_mnist", {"teacher.checkpoint": str(first.path)})
    assert teacher_notice(loads, 60_000, runs / "try1", runs) is None
    short = load_recipe("hinton_mnist", {"teacher.epochs": 1})
    assert teacher_notice(short, 1000, runs / "x", tmp_path) is None


def test_a_run_that_recorded_its_measured_mean_std_still_matches_its_recipe() -> None:
    """A folder / csv run writes the mean / std it measured into RUN/recipe.yaml; the recipe that left them
    out still finds that teacher, one that gives other values does not."""
    from kdedge.commands.teacher_reuse import _same_teacher

    wanted = {"seed": 0, "teacher": {"model": "m"}, "data": {"name": "folder", "mean": None, "std": None}}
    saved = wanted | {"data": {"name": "folder", "mean": [0.4], "std": [0.2]}}
    assert _same_teacher(saved, wanted)
    assert not _same_teacher(saved, wanted | {"data": {"name": "folder", "mean": [0.5], "std": [0.2]}})
    assert not _same_teacher(saved | {"seed": 1}, wanted)
