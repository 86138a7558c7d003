"""An int8 file that misses the agreement bound is quantised again (kdedge.export.int8_rescue); the rescue
that recovers it is named; when none does, the error line names the format and says what to try."""

from __future__ import annotations

from pathlib import Path

import pytest
from export_helpers import export_checked, make_run

from kdedge.errors import RuntimeFailure
from kdedge.export.table import file_line
from kdedge.runtime.onnx_meta import read_metadata

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def mlp_run(data_root: Path, tmp_path_factory) -> Path:
    """A briefly trained three-layer MNIST MLP (first and last layers can stay fp32, one stays int8)."""
    path = tmp_path_factory.mktemp("rescue") / "run"
    return make_run(path, data_root, "mlp", model_kwargs={"hidden": [64, 64]}, train_steps=150)


def fake_agreement(monkeypatch, values: list[float]) -> None:
    """The first calls of runner.agreement return `values` (fp32 vs itself first), then the real one."""
    import kdedge.export.runner as runner

    real, left = runner.agreement, list(values)
    monkeypatch.setattr(runner, "agreement", lambda a, b: left.pop(0) if left else real(a, b))


def test_first_rescue_that_meets_the_bound_is_kept_and_named(mlp_run, data_root, monkeypatch):
    fake_agreement(monkeypatch, [1.0, 0.5])  # as quantised first: 50 %; the rescue is measured for real
    rows = export_checked(mlp_run, "student", "fp32,int8", data_root=str(data_root), limit=200)
    int8 = next(r for r in rows if r.precision == "int8")
    assert int8.status == "ok" and int8.test_agreement >= 0.97
    assert read_metadata(int8.path)["kdedge.int8_rescue"] == "ends-fp32"
    assert "int8 rescue ends-fp32 (0.5000 as quantised first" in file_line(int8)


def test_no_rescue_recovers_the_error_names_the_format_and_what_to_try(mlp_run, data_root, monkeypatch):
    fake_agreement(monkeypatch, [1.0, 0.5, 0.6, 0.7, 0.65])
    with pytest.raises(RuntimeFailure) as failure:
        export_checked(mlp_run, "student", "fp32,int8", data_root=str(data_root), limit=200)
    message = str(failure.value)
    assert "student.int8 (onnx): exported but failed" in message
    assert "rescues reached ends-fp32 0.6000, ends-se-fp32 0.7000, percentile 0.6500" in message
    for advice in ("--min-agreement 0.69", "--int8-method nncf", "--precision fp32,fp16", "mobilenetv2_100"):
        assert advice in message
    assert (mlp_run / "export" / "student.fp32.onnx").is_file()  # the file that passed is written
