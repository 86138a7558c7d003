"""kdedge's child processes import the installed kdedge whatever folder they start in.

A user standing in the clone's parent folder has a `kdedge/` directory (the clone) in the working folder.
`python -m ...` puts that folder first on sys.path and, with an editable install (an import hook that
comes after the path), imports it as an empty namespace package. Here: a temporary folder holding an empty
`kdedge/`, and a sitecustomize hook that maps `kdedge` to this checkout the way setuptools' editable finder
does (so the children run this checkout's code, as an installed kdedge would).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from bench_helpers import export_onnx
from typer.testing import CliRunner

from kdedge.cli import app

REPO = Path(__file__).resolve().parents[1]
HOOK = """import sys
from importlib.machinery import PathFinder
from importlib.util import spec_from_file_location

ROOT = {root!r}


class EditableFinder:  # what setuptools writes for `pip install -e .`, after PathFinder on sys.meta_path
    @classmethod
    def find_spec(cls, fullname, path=None, target=None):
        if fullname == "kdedge":
            return spec_from_file_location(fullname, ROOT + "/kdedge/__init__.py")
        if fullname.rpartition(".")[0] == "kdedge":
            return PathFinder.find_spec(fullname, path=[ROOT + "/kdedge"])
        return None


sys.meta_path.insert(sys.meta_path.index(PathFinder) + 1, EditableFinder)
"""


@pytest.fixture
def clone_parent(tmp_path: Path, monkeypatch) -> Path:
    """A working folder with an empty `kdedge/` in it; PYTHONPATH holds only the editable-install hook."""
    hook, here = tmp_path / "hook", tmp_path / "here"
    hook.mkdir()
    (here / "kdedge").mkdir(parents=True)
    (hook / "sitecustomize.py").write_text(HOOK.format(root=str(REPO)))
    monkeypatch.setenv("PYTHONPATH", str(hook))
    monkeypatch.delenv("PYTHONSAFEPATH", raising=False)
    monkeypatch.chdir(here)
    return here


def test_python_m_kdedge_runs_the_installed_package(clone_parent):
    """`python -m kdedge --version` (what `torchrun -m kdedge` starts on every rank)."""
    done = subprocess.run([sys.executable, "-m", "kdedge", "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("kdedge "), done.stderr[-400:]


def test_bench_rows_run_from_a_folder_with_a_kdedge_directory(clone_parent, tmp_path):
    """The bench worker (`python -m kdedge.bench.worker`) imports kdedge, not the working folder's `kdedge/`."""
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 5))
    file = export_onnx(model, tmp_path / "plain.onnx", (3, 8, 8), {})
    args = ["bench", str(file), "--runtimes", "onnxruntime", "--batch", "2", "--seconds", "0.1"]
    result = CliRunner().invoke(app, [*args, "--json", str(tmp_path / "b.json"), "--quiet"])
    rows = json.loads((tmp_path / "b.json").read_text())["rows"]
    assert [row["status"] for row in rows] == ["ok"], rows
    assert result.exit_code == 0, result.output


def test_ray_workers_start_where_the_driver_imported_kdedge(monkeypatch, tmp_path):
    """Ray puts the driver's working folder first on every worker's sys.path at ray.init(): kdedge starts
    Ray from the folder that holds the kdedge it runs, and its workers with PYTHONSAFEPATH."""
    import kdedge
    from kdedge.experiments.sweep_ray import RayOptions, ray_session

    seen: dict = {}

    class FakeRay:
        def is_initialized(self) -> bool:
            return False

        def init(self, **kwargs) -> None:
            seen.update(kwargs, cwd=Path.cwd())

        def shutdown(self) -> None:
            seen["shutdown"] = True

    monkeypatch.chdir(tmp_path)
    with ray_session(FakeRay(), RayOptions(cpus=1)):
        pass
    assert seen["cwd"] == Path(kdedge.__file__).resolve().parents[1] and Path.cwd() == tmp_path
    assert seen["runtime_env"] == {"env_vars": {"PYTHONSAFEPATH": "1"}} and seen["shutdown"]
