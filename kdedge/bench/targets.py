"""What to bench: models found in run directories (torch weights + RUN/export/*.onnx) and bare .onnx files,
and the test set each is scored on (prepared once, normalised, as a .npy the row processes memory-map)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kdedge.bench.edge_targets import edge_files, edge_key, is_edge_file
from kdedge.bench.onnx_info import graph_stats, input_shape, meta_list, read_metadata
from kdedge.errors import InputError, KdedgeError
from kdedge.runtime.edge_meta import read_edge_metadata

if TYPE_CHECKING:
    from kdedge.files.rundir import RunDir
    from kdedge.recipe import Recipe

PRECISIONS = ("fp32", "fp16", "int8")


@dataclass
class BenchModel:
    """One model to bench: a stage of a run directory, or bare ONNX files of one model (one per precision)."""

    group: str  # run directory name or the bare files' folder (for the label; two runs may share it)
    stage: str  # "teacher", "student", or "" when a bare file does not say
    arch: str
    input_shape: tuple[int, int, int]  # (C, H, W)
    dataset: str | None = None
    mean: list[float] | None = None
    std: list[float] | None = None
    run_path: str | None = None  # a run directory: torch rows load its weights
    weights: str | None = None
    onnx: dict[str, str] = field(default_factory=dict)  # precision -> file
    edge: dict[tuple, str] = field(default_factory=dict)  # (format, precision, batch or None) -> file
    params: int | None = None
    flops: int | None = None  # per image
    test_limit: int | None = None  # the recipe's data.test_limit and seed select the same test images as training
    seed: int = 0
    data_root: str | None = None  # where the run read its data (summary.json), used without --data-root
    data_options: dict = field(default_factory=dict)  # the recipe's data.split / data.cache_dir (APTOS)
    test_images: str | None = None  # .npy (N, C, H, W) float32, filled by prepare_test_sets
    test_labels: np.ndarray | None = None
    note: str = ""
    # a student is compared with the teacher of the same pair_key: for run directories the absolute path
    # of the teacher weights the run records (see recorded_teacher), for bare files their absolute folder
    pair_key: str | None = None

    @property
    def label(self) -> str:
        """run/stage for a run directory; folder/stage for bare files (RUN/export/student.int8.onnx ->
        RUN/export/student), folder/arch when the file does not say its stage."""
        return f"{self.group}/{self.stage}" if self.run_path else f"{self.group}/{self.stage or self.arch}"


def torch_stats(model, shape: tuple[int, int, int]) -> dict[str, int]:
    """params and FLOPs for one image (torch.utils.flop_counter: 2 x multiply-adds)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(torch.zeros(1, *shape))
    return {"params": sum(p.numel() for p in model.parameters()), "flops": int(counter.get_total_flops())}


def onnx_precision(path: Path, meta: dict[str, str]) -> str:
    """kdedge.precision, else the precision named in the file name (student.int8.onnx), else fp32."""
    if meta.get("kdedge.precision") in PRECISIONS:
        return meta["kdedge.precision"]
    return next((p for p in PRECISIONS if p in path.name.split(".")), "fp32")


def recorded_teacher(run_path: Path, summary: dict) -> str | None:
    """Absolute path of the teacher weights the run's student learnt from, as the run records it: the
    teacher.checkpoint it loaded (summary.json teacher.source), else its own teacher.safetensors; None for
    a run without a teacher. A relative source is taken relative to the working directory."""
    teacher = summary.get("teacher")
    if not isinstance(teacher, dict):
        return None
    source = Path(teacher.get("source") or run_path / "teacher.safetensors")
    return str(source.expanduser().resolve())


def models_of_run(path: Path) -> list[BenchModel]:
    """The run's teacher and student (whichever have weights), with their exported ONNX files."""
    from kdedge.files.rundir import RunDir

    path = path.resolve()  # the run's identity: two runs in different folders may share a name
    run = RunDir(path)
    summary = run.read_summary()
    recipe, info = run.read_recipe(), summary.get("data")
    if info is None:
        raise InputError(f"{path}: summary.json has no 'data' section (an unfinished run?)")
    exports = {file: read_metadata(file) for file in sorted((path / "export").glob("*.onnx"))}
    models = [
        _stage_model(run, recipe, stage, summary, _stage_files(exports, stage))
        for stage in ("teacher", "student")
        if getattr(recipe, stage) is not None and run.weights(stage).is_file()
    ]
    for model in models:
        model.edge = edge_files(path / "export", model.stage)
    if not models:
        raise InputError(f"{path}: run directory has no trained teacher or student weights")
    return models


def _stage_files(exports: dict[Path, dict[str, str]], stage: str) -> dict[str, str]:
    """precision -> file of the stage's exported ONNX files (kdedge.stage, else the file name says which)."""
    return {
        onnx_precision(f, m): str(f) for f, m in exports.items() if m.get("kdedge.stage", f.name.split(".")[0]) == stage
    }


def _stage_model(run: RunDir, recipe: Recipe, stage: str, summary: dict[str, Any], files: dict[str, str]) -> BenchModel:
    """One trained stage of the run: its weights (loaded for params and FLOPs), its ONNX files
    (precision -> file), the run's test selection and the teacher it is paired with."""
    from kdedge.files.rundir import remembered_data_root

    info = summary["data"]
    model, _ = run.load_model(stage)
    shape = (info["in_channels"], info["image_size"], info["image_size"])
    return BenchModel(
        run.path.name,
        stage,
        getattr(recipe, stage).model,
        shape,
        info["dataset"],
        info["mean"],
        info["std"],
        str(run.path),
        str(run.weights(stage)),
        files,
        **torch_stats(model, shape),
        test_limit=recipe.data.test_limit,
        seed=recipe.seed,
        data_options=_data_options(recipe.data),
        data_root=remembered_data_root(summary, None),
        pair_key=recorded_teacher(run.path, summary),
    )


def _data_options(cfg) -> dict:
    """The loader options pipeline.prepare_data passes, so bench scores the run's own test images."""
    return cfg.loader_options()


def model_of_onnx(path: Path) -> BenchModel:
    """A bare .onnx file, described by its kdedge metadata (or its graph when the metadata is missing)."""
    meta = read_metadata(path)
    shape = input_shape(path, meta)
    stage = meta.get("kdedge.stage", "")
    arch = meta.get("kdedge.model") or path.name.split(".")[0]
    folder = path.resolve().parent
    group = f"{folder.parent.name}/{folder.name}" if folder.name in ("export", "deploy") else folder.name
    return BenchModel(
        group,
        stage,
        arch,
        shape,
        meta.get("kdedge.dataset"),
        meta_list(meta, "kdedge.mean"),
        meta_list(meta, "kdedge.std"),
        onnx={onnx_precision(path, meta): str(path)},
        **graph_stats(path, shape),
        pair_key=str(path.resolve().parent),
    )


def model_of_edge(path: Path) -> BenchModel:
    """A bare edge file (.pte, .tflite, .mlpackage), described by its kdedge metadata."""
    meta = read_edge_metadata(path)
    height, width = (int(v) for v in meta.get("kdedge.input_size", "0,0").split(","))
    return BenchModel(
        path.resolve().parent.name,
        meta.get("kdedge.stage", ""),
        meta.get("kdedge.model") or path.name.split(".")[0],
        (int(meta.get("kdedge.in_channels", 0)), height, width),
        meta.get("kdedge.dataset"),
        meta_list(meta, "kdedge.mean"),
        meta_list(meta, "kdedge.std"),
        edge={edge_key(path, meta): str(path)},
        pair_key=str(path.resolve().parent),
    )


def discover(paths: list[Path]) -> list[BenchModel]:
    """Models of every path; bare files of the same model (folder, stage, arch) merge into one model."""
    models: list[BenchModel] = []
    for path in paths:
        if path.is_dir() and not is_edge_file(path):
            models += models_of_run(path)
        elif (path.suffix == ".onnx" and path.is_file()) or (is_edge_file(path) and path.exists()):
            found = model_of_onnx(path) if path.suffix == ".onnx" else model_of_edge(path)
            twin = next(
                (
                    m
                    for m in models
                    if m.run_path is None and (m.group, m.stage, m.arch) == (found.group, found.stage, found.arch)
                ),
                None,
            )
            if twin is not None:
                twin.onnx.update(found.onnx)
                twin.edge.update(found.edge)
                twin.flops = twin.flops or found.flops
            else:
                models.append(found)
        else:
            raise InputError(f"{path}: not a run directory or an existing .onnx/.pte/.tflite/.mlpackage")
    return models


def prepare_test_sets(models: list[BenchModel], data_root: str | None, limit: int | None, folder: Path) -> None:
    """Normalised test images per (data set, size, mean/std, selection) as .npy in `folder`; a model whose
    data set cannot be loaded keeps test_images None and says why in `note`."""
    cache: dict[tuple, tuple[str | None, np.ndarray | None, str]] = {}
    for model in models:
        key = (
            repr(model.data_options),
            model.dataset,
            model.input_shape,
            tuple(model.mean or ()),
            tuple(model.std or ()),
            model.test_limit,
            model.seed,
            limit,
        )
        if key not in cache:
            cache[key] = _load_test_set(model, data_root, limit, folder / f"test{len(cache)}.npy")
        model.test_images, model.test_labels, model.note = cache[key]


def _load_test_set(model: BenchModel, data_root: str | None, limit: int | None, file: Path):
    import torch

    from kdedge.data.load import load_data
    from kdedge.data.types import normalize

    if not model.dataset or model.mean is None or model.std is None:
        return None, None, "no accuracy: the file names no data set / mean / std (kdedge metadata)"
    try:
        extra = (model.data_options,) if model.data_options else ()  # older load_data has no options
        test = load_data(model.dataset, data_root or model.data_root, model.input_shape[-1], *extra).test
    except KdedgeError as err:
        return None, None, f"no accuracy: {err}"
    if model.test_limit is not None and model.test_limit < len(test):  # same images the run was scored on
        test = test.subset(
            torch.randperm(len(test), generator=torch.Generator().manual_seed(model.seed))[: model.test_limit]
        )
    if limit is not None:
        test = test.subset(torch.arange(min(limit, len(test))))
    np.save(file, normalize(test.images, tuple(model.mean), tuple(model.std)).numpy().astype(np.float32))
    return str(file), test.labels.numpy(), ""
