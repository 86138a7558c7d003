# ruff: noqa: E501 - the case tables read best as one case per line
"""Hostile files handed to predict / bench / export --target / a recipe: refused with one line (exit 2) before
a runtime reads or allocates anything; the files and folders involved stay exactly as they were.

The hostile ONNX, safetensors and image files are built by tests/hostile_files.py; each case below is
(id, the text the one line must contain). docs/faults.md lists the same cases.
"""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
from cli_helpers import checksums, one_error_line, run_kdedge, write_recipe
from hostile_files import build_images, build_onnx, build_safetensors, good_model

from kdedge.errors import InputError
from kdedge.runtime.check import check_model_file

ONNX_CASES = {
    "onnx-external-parent": "points at external data '../../../../etc/passwd' outside the model's folder",
    "onnx-external-absolute": "points at external data '/etc/passwd' outside the model's folder",
    "onnx-external-symlink-out": "points at external data 'link.bin' outside the model's folder",
    "onnx-external-missing": "external data file 'nowhere.bin' does not exist",
    "onnx-external-overrun": "does not fit 'short.bin' (64 bytes)",
    "onnx-huge-initializer": "would need 3136.0 GiB (limit 4 GiB)",
    "onnx-raw-data-lies": "declares 31360 bytes (shape [784, 10]) but holds 8",
    "onnx-negative-dim": "declares dimensions [784, -10]",
    "onnx-huge-input": "'images' declares dimensions [1, 2147483648], more than 1048576 in one",
    "onnx-huge-constant": "tensor 'c' of shape [1048576, 1048576] would need 4096.0 GiB",
    "onnx-custom-op": "custom-op domain 'evil.ops'",
    "onnx-custom-op-in-subgraph": "uses the custom-op domain 'evil.ops'",
    "onnx-custom-opset-import": "imports the custom-op domain 'com.example.custom'",
    "onnx-future-opset": "opset 99 is newer than this onnx/onnxruntime runs",
}
SAFETENSORS_CASES = {
    "st-header-length-huge": "safetensors header claims 4611686018427387904 bytes",
    "st-header-beyond-file": "safetensors header claims 4096 bytes in a 10-byte file",
    "st-header-not-json": "safetensors header is not valid JSON",
    "st-header-not-object": "safetensors header is not a JSON object",
    "st-absurd-shape": "tensor 'w' declares shape [1099511627776, 1048576]",
    "st-offsets-beyond-file": "data offsets 0..40 that do not fit",
    "st-offsets-disagree-shape": "data offsets 0..8 that do not fit",
    "st-unknown-dtype": "tensor 'w' has a malformed entry",
    "st-too-short": "3 bytes, too short for a safetensors header",
}
IMAGE_CASES = {
    "image-decompression-bomb": "refused: more than 64 million pixels (a decompression bomb?)",
    "image-over-limit": "refused: more than 64 million pixels",
    "image-truncated-png": "not a readable image (OSError",
    "image-truncated-jpeg": "not a readable image (OSError",
    "image-empty": "not a readable image (UnidentifiedImageError",
    "image-text-as-png": "not a readable image (UnidentifiedImageError",
}
COMMANDS = {  # how each command is handed a hostile ONNX file (`{model}`); {run}: a folder of its own
    "predict": "predict {model} {image}",
    "bench": "bench {model} --runtimes onnxruntime --batch 1 --seconds 0.01",
    "export-target": "export {run} --target cpu-x86 --model student",
}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("hostile")
    images = build_images(tmp / "images")
    return {
        "tmp": tmp,
        "onnx": build_onnx(tmp / "onnx"),
        "safetensors": build_safetensors(tmp / "st"),
        "images": images,
        "good_onnx": good_model(tmp / "good.onnx"),
        "good_image": tmp / "images" / "good.png",
        "recipe": write_recipe(tmp / "r.yaml"),
    }


def _bench_record(run: Path, model: Path) -> None:
    """RUN/bench.json naming `model` as the fastest accurate file: what --target would deploy."""
    row = {
        "stage": "student",
        "device": "cpu",
        "runtime": "onnxruntime",
        "precision": "fp32",
        "status": "ok",
        "accuracy": 0.9,
        "agreement_fp32": 1.0,
        "batch_size": 1,
        "latency_ms_p50": 1.0,
        "file": str(model),
        "size_mb": model.stat().st_size / 1e6,
    }
    run.mkdir()
    (run / "bench.json").write_text(json.dumps({"rows": [row]}))


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case", ONNX_CASES)
def test_hostile_onnx_is_refused_before_loading(hostile, tmp_path, command, case):
    model, run = hostile["onnx"][case], tmp_path / "run"
    if command == "export-target":
        _bench_record(run, model)
    before = checksums(hostile["tmp"])
    args = COMMANDS[command].format(model=model, image=hostile["good_image"], run=run).split()
    code, _, err = run_kdedge(*args)
    line = one_error_line(err)
    assert code == 2 and line.startswith(f"error: {model}: refused before loading: "), line
    assert ONNX_CASES[case] in line, line
    assert checksums(hostile["tmp"]) == before and not (run / "export").exists()


@pytest.mark.parametrize("case", ["onnx-external-parent", "onnx-external-absolute"])
def test_onnx_and_onnxruntime_refuse_escaping_external_data_themselves(hostile, case):
    """The second line of defence (the pinned libraries) must stay: they refuse it too, without kdedge."""
    import onnxruntime as ort

    with pytest.raises(Exception, match=r"(?i)(outside|escap|absolute|invalid|not allowed|traversal)"):
        onnx.load(str(hostile["onnx"][case]))
    with pytest.raises(Exception):  # noqa: B017 - any refusal will do; what matters is that it is not loaded
        ort.InferenceSession(str(hostile["onnx"][case]), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("key", ["teacher.checkpoint", "student.pretrained"])
@pytest.mark.parametrize("case", SAFETENSORS_CASES)
def test_hostile_safetensors_is_refused_before_loading(hostile, tmp_path, key, case):
    file = hostile["safetensors"][case]
    before = checksums(hostile["tmp"])
    code, _, err = run_kdedge("distill", hostile["recipe"], "-q", "--out", tmp_path / "run", "--set", f"{key}={file}")
    line = one_error_line(err)
    assert code == 2 and f"{file}: not a valid safetensors file (" in line and SAFETENSORS_CASES[case] in line, line
    assert checksums(hostile["tmp"]) == before and not (tmp_path / "run").exists()


@pytest.mark.parametrize("case", IMAGE_CASES)
def test_hostile_image_is_refused(hostile, case):
    image = hostile["images"][case]
    before = checksums(hostile["tmp"])
    code, _, err = run_kdedge("predict", hostile["good_onnx"], hostile["good_image"], image)
    line = one_error_line(err)
    assert code == 2 and line.startswith(f"error: {image}: ") and IMAGE_CASES[case] in line, line
    assert checksums(hostile["tmp"]) == before


def test_the_good_files_pass_the_same_checks(hostile):
    """The checks refuse the hostile files only: a normal model and image still predict."""
    code, out, err = run_kdedge("predict", hostile["good_onnx"], hostile["good_image"], "--top-k", "2")
    assert code == 0 and err == "" and out.count("%") == 2, err


IR = """<?xml version="1.0"?>
<net name="m" version="11"><layers>
<layer id="0" name="w" type="Const" version="opset1"><data element_type="f32" shape="{shape}" offset="{offset}" size="{size}"/>
<output><port id="0" precision="FP32"><dim>{dim}</dim></port></output></layer>
</layers></net>
"""
IR_CASES = {  # id -> (xml, .bin bytes, text of the refusal or None when the IR is fine)
    "ir-ok": (IR.format(shape="4", offset=0, size=16, dim=4), 16, None),
    "ir-const-beyond-bin": (
        IR.format(shape="4", offset=8, size=16, dim=4),
        16,
        "claims bytes 8..24 of a 16-byte .bin",
    ),
    "ir-const-size-lies": (
        IR.format(shape="400", offset=0, size=16, dim=400),
        16,
        "declares 16 bytes, not 1600",
    ),
    "ir-huge-dim": (
        IR.format(shape="4", offset=0, size=16, dim=1 << 40),
        16,
        "declares dimension 1099511627776",
    ),
    "ir-entities": (
        '<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaa">]><net>&a;</net>',
        0,
        "declares a DTD",
    ),
}


@pytest.mark.parametrize("case", IR_CASES)
def test_openvino_ir_sanity_check(tmp_path, case):
    """No command reads a stranger's IR today (bench converts its own); check_model_file guards the day one
    does, and the .pte / .tflite readers plug into the same API."""
    xml, bin_size, expected = IR_CASES[case]
    (tmp_path / "m.xml").write_text(xml)
    (tmp_path / "m.bin").write_bytes(b"\0" * bin_size)
    if expected is None:
        check_model_file(tmp_path / "m.xml")
        return
    with pytest.raises(InputError, match="refused before loading") as info:
        check_model_file(tmp_path / "m.xml")
    assert expected in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(("suffix", "head"), [(".tflite", b"\x18\x00\x00\x00TFL3"), (".pte", b"\x18\x00\x00\x00ET12")])
def test_flatbuffer_formats_are_identified_before_loading(tmp_path, suffix, head):
    good, bad = tmp_path / f"good{suffix}", tmp_path / f"bad{suffix}"
    good.write_bytes(head + b"\0" * 64)
    bad.write_bytes(b"\x18\x00\x00\x00ONNX" + b"\0" * 64)
    check_model_file(good)
    with pytest.raises(InputError, match="refused before loading: not a .* file"):
        check_model_file(bad)
