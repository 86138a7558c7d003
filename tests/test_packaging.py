"""The distribution name in pyproject, README and messages; the wheel as a user gets it: built from the
source, installed into a fresh venv (offline, reusing the torch already installed here), run by recipe NAME
from a folder outside the repository."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DISTRIBUTION = "kdedge-distill"  # `kdedge` on PyPI is an unrelated project (graph edge bundling)


def _run(command: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "KDEDGE_DATA")}
    result = subprocess.run(
        command, cwd=cwd, env=env | {"COLUMNS": "200"}, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"{' '.join(command)}\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the wheel from a copy of the sources (building in place would leave build/ in the repo)."""
    source = tmp_path_factory.mktemp("source")
    shutil.copytree(REPO / "kdedge", source / "kdedge", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    dist = tmp_path_factory.mktemp("dist")
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-q",
            "-w",
            str(dist),
            str(source),
        ],
        cwd=source,
    )
    (built,) = dist.glob("kdedge_distill-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel installed (no deps); torch & co. come from this interpreter's
    site-packages through a .pth line (a plain path line: the editable install's own .pth is not run)."""
    folder = tmp_path_factory.mktemp("venv") / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(folder)], cwd=folder.parent)
    python = folder / "bin" / "python"
    purelib = _run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=folder
    ).stdout.strip()
    Path(purelib, "_reuse_installed_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--ignore-installed", str(wheel)],
        cwd=folder,
    )
    return folder


def test_wheel_ships_every_recipe(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for recipe in (REPO / "kdedge" / "recipes").glob("*.yaml"):
        assert f"kdedge/recipes/{recipe.name}" in names
    assert not any(name.startswith(("tests/", "bench/", "runs/")) for name in names)


def test_installed_wheel_runs_recipes_by_name_outside_the_repo(venv: Path, tmp_path: Path) -> None:
    kdedge = str(venv / "bin" / "kdedge")
    where = _run([str(venv / "bin" / "python"), "-c", "import kdedge; print(kdedge.__file__)"], cwd=tmp_path)
    assert where.stdout.strip().startswith(str(venv)), "the test would be testing the repository, not the wheel"
    listed = _run([kdedge, "recipes"], cwd=tmp_path).stdout
    assert "quickstart_mnist" in listed and "hinton_mnist" in listed
    shown = _run([kdedge, "recipes", "show", "hinton_mnist"], cwd=tmp_path).stdout
    assert shown == (REPO / "kdedge" / "recipes" / "hinton_mnist.yaml").read_text()
    tiny = [
        "--set",
        "teacher.epochs=1",
        "--set",
        "student.epochs=1",
        "--set",
        "data.train_limit=500",
        "--set",
        "teacher.model_kwargs.hidden=[32]",
    ]
    result = _run([kdedge, "distill", "quickstart_mnist", *tiny, "--out", "run"], cwd=tmp_path)
    assert "device: " in result.stdout and "quickstart_mnist" in result.stdout
    assert (tmp_path / "run" / "student.safetensors").is_file() and (tmp_path / "run" / "summary.json").is_file()
    version = _run([kdedge, "--version"], cwd=tmp_path).stdout.strip()
    assert version.startswith("kdedge ")


def _readme_install_lines() -> list[list[str]]:
    """The `pip ...` lines of README's install section, as argv lists."""
    import re
    import shlex

    readme = (REPO / "README.md").read_text()
    section = readme.split("## Install", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```bash\n(.*?)```", section, re.S)
    return [shlex.split(line, comments=True) for line in block.splitlines() if line.startswith("pip ")]


@pytest.mark.slow
def test_readme_install_lines_work_in_a_fresh_venv_outside_the_repo(tmp_path: Path) -> None:
    """README's install section as a user runs it, in a clone copied outside the repo and a fresh venv:
    `pip install .`, with extras, `pip wheel`, then the wheel. Offline here: --no-deps / --no-index (the
    dependencies come from this interpreter through a .pth line, as in the fixture above)."""
    lines = _readme_install_lines()
    assert [line[:2] for line in lines] == [
        ["pip", "install"],
        ["pip", "install"],
        ["pip", "wheel"],
        ["pip", "install"],
    ]
    assert any("[tensorboard,openvino]" in word for line in lines for word in line)
    clone = tmp_path / "kdedge"
    shutil.copytree(REPO / "kdedge", clone / "kdedge", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, clone / name)
    env = tmp_path / "env"
    _run([sys.executable, "-m", "venv", "--without-pip", str(env)], cwd=tmp_path)
    python = env / "bin" / "python"
    purelib = _run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp_path
    ).stdout.strip()
    Path(purelib, "_reuse_installed_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    offline = ["--no-deps", "--no-index", "--no-build-isolation", "-q"]
    for line in lines:
        reinstall = ["--force-reinstall"] if line[1] == "install" else []
        _run([str(python), "-m", *line, *offline, *reinstall], cwd=clone)
    listed = _run([str(python), "-m", "pip", "list", "--format", "freeze"], cwd=tmp_path).stdout
    assert "kdedge-distill==0.1.0" in listed.lower().replace("_", "-")
    where = _run([str(python), "-c", "import kdedge; print(kdedge.__file__)"], cwd=tmp_path).stdout
    assert where.startswith(str(env)), where  # installed (from the wheel, last), not the clone
    assert "quickstart_mnist" in _run([str(env / "bin" / "kdedge"), "recipes"], cwd=tmp_path).stdout


def test_the_distribution_name_is_ours_everywhere() -> None:
    """pyproject names kdedge-distill (the import and the command stay kdedge); no message tells users to
    `pip install kdedge[...]`, which would fetch the unrelated PyPI project."""
    pyproject = (REPO / "pyproject.toml").read_text()
    assert re.search(rf'^name = "{DISTRIBUTION}"$', pyproject, re.M)
    assert re.search(r'^kdedge = "kdedge\.', pyproject, re.M)  # the command keeps its name
    stale = []
    for path in [REPO / "README.md", *REPO.glob("docs/**/*.md"), *(REPO / "kdedge").rglob("*.py")]:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"(pip install|needs|extra:?)\s+'?kdedge\[", line):
                stale.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not stale, "\n".join(stale)
    readme = (REPO / "README.md").read_text()
    assert f"pip install '{DISTRIBUTION}[" in readme or f"{DISTRIBUTION.replace('-', '_')}-" in readme


def test_readme_says_how_to_get_kdedge_on_path() -> None:
    """After `make demo` the command lives in .venv/bin: README says to activate it or call it there."""
    readme = (REPO / "README.md").read_text()
    assert "source .venv/bin/activate" in readme and ".venv/bin/kdedge" in readme
