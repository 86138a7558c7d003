"""`kdedge export RUN --target cpu-x86`: copy the deployable file chosen from `kdedge bench RUN`'s
measurements (kdedge.bench.deploy). The export itself is kdedge.api.export -> kdedge.export.runner."""

from __future__ import annotations

from pathlib import Path

from kdedge.ui.console import console


def deploy_command(run_dir: Path, model: str, target: str, accuracy_bound: float) -> None:
    """Write RUN/export/deploy/<stage>.<target>.onnx for each stage and say where."""
    from kdedge.bench.deploy import deploy_run

    for path, why in deploy_run(run_dir, model, target, accuracy_bound):
        console.print(f"deployable: {path} ({why})", markup=False, highlight=False, soft_wrap=True)
