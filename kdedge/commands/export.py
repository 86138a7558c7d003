"""`kdedge export RUN`: the files per stage, precision and format (kdedge.export.runner), or with --target the
deployable file chosen from `kdedge bench RUN`'s measurements (kdedge.bench.deploy)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kdedge.commands.options import ExportOptions
from kdedge.ui.console import console

if TYPE_CHECKING:
    from kdedge.export.table import ExportRow


class ExportResult(list):
    """The rows of the files that were written (a list of kdedge.export.table.ExportRow), and which were not:
    `failed` holds their rows (status says why), `message` the one line the CLI prints ("" when none failed)."""

    def __init__(self, written: list[ExportRow], failed: list[ExportRow], message: str = "") -> None:
        super().__init__(written)
        self.failed = failed
        self.message = message


def export_command(options: ExportOptions) -> ExportResult:
    """Export, check and publish every requested file; a file that fails its check is reported in the
    result (and never written), the others are kept. Bad input (not a run, a precision, a stage) is said
    before torch is imported: a typo costs no start-up time."""
    from kdedge.export.options import check_request

    request = check_request(
        options.run_dir, options.models, options.precisions, options.formats, options.batches, options.settings()
    )
    from kdedge.export.runner import ExportFailed, export_run

    try:
        rows = export_run(
            request, data_root=options.data_root, quiet=options.quiet, force=options.force, wide=options.wide
        )
    except ExportFailed as failure:
        written = [row for row in failure.rows if row.status == "ok" and row.path]
        failed = [row for row in failure.rows if row.status != "ok"]
        return ExportResult(written if not options.force else [], failed, str(failure))
    return ExportResult(rows, [])


def deploy_command(options: ExportOptions) -> None:
    """Write RUN/export/deploy/<stage>.<target>.onnx for each stage and say where and why (its accuracy and its
    agreement with fp32, each within its bound)."""
    from kdedge.bench.deploy import deploy_run

    chosen = deploy_run(
        options.run_dir, options.models, options.target, options.accuracy_bound, options.min_top1_agreement
    )
    for path, why in chosen:
        console.print(f"deployable: {path} ({why})", markup=False, highlight=False, soft_wrap=True)
