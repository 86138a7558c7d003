"""The study files under studies/ (`kdedge study studies/NAME.yaml`): each must load and plan without training;
one that reproduces a published table is named in that table's section of docs/results.md."""

from __future__ import annotations

from pathlib import Path

import pytest

from kdedge.experiments.study.plan import make_plan
from kdedge.experiments.study.spec import is_study_file, read_study_file, spec_from

REPO = Path(__file__).resolve().parents[1]
STUDIES = sorted((REPO / "studies").glob("*.yaml"))
# study file -> the table of docs/results.md it reproduces (measured before the study file existed)
PUBLISHED = {
    "cifar10_alpha": "cifar10_alpha_study_table",
    "cifar10_resnet_subset": "cifar10_resnet_subset_table",
    "cifar10_resnet_full": "cifar10_resnet_subset_table",  # the full-data table: not run, named in its notes
    "retinamnist_6_epochs": "retinamnist_table",
    "retinamnist_30_epochs": "retinamnist_long_table",
    "retinamnist_students": "retinamnist_students_table",
    "retinamnist_swin": "retinamnist_swin",
}


def plan_of(name: str, out: Path):
    path = REPO / "studies" / f"{name}.yaml"
    return make_plan(spec_from(read_study_file(path), str(path)), out)


def test_there_are_study_files() -> None:
    assert len(STUDIES) >= 5


@pytest.mark.parametrize("path", STUDIES, ids=[path.stem for path in STUDIES])
def test_every_study_file_plans(path: Path, tmp_path: Path) -> None:
    assert is_study_file(str(path))
    plan = make_plan(spec_from(read_study_file(path), str(path)), tmp_path)
    assert plan.trained_cells() and all(cell.baseline for cell in plan.cells if not cell.is_baseline)


@pytest.mark.parametrize("study, table", sorted(PUBLISHED.items()))
def test_a_published_tables_study_file_is_in_its_section_of_the_results_page(study: str, table: str) -> None:
    page = (REPO / "docs" / "results.md").read_text()
    section = page.split(f'<a id="{table}"></a>', 1)[1].split("<a id=", 1)[0]
    assert (REPO / "studies" / f"{study}.yaml").is_file() and f"kdedge study studies/{study}.yaml" in section


def test_the_cifar10_subset_study_is_the_published_protocol(tmp_path: Path) -> None:
    plan = plan_of("cifar10_resnet_subset", tmp_path)
    cells = {(cell.entry, cell.row, cell.seed): cell for cell in plan.cells}
    plain = cells[("cifar10_self_r18", "no-kd", 0)]
    assert plain.stage == "teacher" and plain.path == plan.teachers[0].path  # no KD = the self-KD teacher run
    reverse = cells[("cifar10_reverse_r50_from_r18", "kd", 1)].recipe
    teacher = next(t for t in plan.teachers if t.seed == 1)
    assert reverse.teacher.checkpoint == str(teacher.path.resolve()) and reverse.student.epochs == 8
    assert teacher.recipe.teacher.epochs == 15 and reverse.data.train_limit == 4000


def test_the_alpha_study_loads_one_teacher_for_every_student(tmp_path: Path) -> None:
    plan = plan_of("cifar10_alpha", tmp_path)
    assert not plan.teachers and {cell.seed for cell in plan.cells} == {0, 1}
    assert {c.recipe.teacher.checkpoint for c in plan.cells} == {"runs/alex_teacher30"}
    kd = [cell.recipe.distillation.alpha for cell in plan.cells if cell.seed == 0 and not cell.is_baseline]
    assert kd == [1.0, 0.0, 0.5]
