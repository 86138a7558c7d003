"""kdedge.cli.completion: what the bash completion script offers (recipe names, recipe files, run folders)."""

from __future__ import annotations

from pathlib import Path


def _complete(words: str, cwd: Path) -> list[str]:
    """What the script from `kdedge --install-completion` (bash) offers for the last of `words`: the same
    environment variables the script sets, here in this process (tests/test_cli.py runs the script)."""
    import os

    from typer.testing import CliRunner

    from kdedge.cli import app

    cword = len(words.split()) - (0 if words.endswith(" ") else 1)  # the word being completed
    env = {"_KDEDGE_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(cword)}
    here = Path.cwd()
    os.chdir(cwd)
    try:
        done = CliRunner().invoke(app, [], env=env, prog_name="kdedge")
    finally:
        os.chdir(here)
    assert done.exit_code == 0, done.output
    return done.output.split()


def test_completion_offers_recipe_names_and_run_folders(tmp_path: Path) -> None:
    (tmp_path / "runs" / "try1").mkdir(parents=True)
    (tmp_path / "runs" / "try1" / "summary.json").write_text("{}")
    (tmp_path / "runs" / "notes").mkdir()  # not a run: offered only as a folder to go into
    (tmp_path / "my.yaml").write_text("name: x\n")
    assert _complete("kdedge distill hinton_mnist_8", tmp_path) == ["hinton_mnist_800"]
    assert "my.yaml" in _complete("kdedge distill my", tmp_path)
    assert _complete("kdedge recipes show quick", tmp_path) == ["quickstart_mnist"]
    assert _complete("kdedge eval runs/t", tmp_path) == ["runs/try1"]
    assert _complete("kdedge export ", tmp_path) == ["runs/notes/", "runs/try1"]
    assert "runs/try1" in _complete("kdedge bench runs/", tmp_path)
