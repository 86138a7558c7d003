"""`kdedge export RUN`: ONNX files checked against PyTorch (kdedge.export), or with --target the deployable
file chosen from `kdedge bench RUN`'s measurements (kdedge.bench.deploy)."""

from __future__ import annotations

from pathlib import Path

from kdedge.console import console


def export_command(run_dir: Path, model: str, precision: str, opset: int | None, *, data_root: str | None,
                   calibration_images: int | None, int8_scheme: str | None, int8_method: str | None,
                   min_agreement: float | None, limit: int | None, target: str | None,
                   accuracy_bound: float, force: bool, quiet: bool, wide: bool = False) -> None:  # fmt: skip
    """Export (or, with a target, pick the deployable file) and report what was written."""
    if target is not None:
        from kdedge.bench.deploy import deploy_run

        for path in deploy_run(run_dir, model, target, accuracy_bound):
            console.print(f"deployable: {path}", markup=False, highlight=False)
        return
    from kdedge.export.runner import export_run

    export_run(run_dir, model, precision, opset, data_root=data_root, calibration_images=calibration_images,
               int8_scheme=int8_scheme, int8_method=int8_method, min_top1_agreement=min_agreement,
               limit=limit, quiet=quiet, force=force, wide=wide)  # fmt: skip
