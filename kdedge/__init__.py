"""kdedge: distill large image classifiers into small ones that run on edge devices.

The Python API (kdedge.api; imported on first use, so `import kdedge` pulls in neither torch nor
onnxruntime): kdedge.distill(recipe, overrides=..., out=...) -> Run, kdedge.train, kdedge.sweep,
kdedge.export(run, ...) -> rows, kdedge.bench(run, ...) -> rows, kdedge.init(folder, teacher=...,
student=...) -> recipe file, kdedge.predict(file, images) -> results, kdedge.check(file.onnx) -> which
ONNX runtimes load it and agree, kdedge.search(recipe, target=..., latency_ms=...) -> the pick,
kdedge.study(recipes, seeds=...) -> the table of recipes x seeds x rows beside no KD, kdedge.Run.
"""

from __future__ import annotations

import types
from typing import Any

__version__ = "0.1.0"
__all__ = [
    "Run",
    "__version__",
    "bench",
    "check",
    "distill",
    "export",
    "init",
    "predict",
    "search",
    "study",
    "sweep",
    "train",
]
_API = ("Run", "check", "distill", "init", "predict", "search", "study", "sweep")


class CallablePackage(types.ModuleType):
    """kdedge.train, kdedge.export and kdedge.bench are packages and also the API calls
    kdedge.train(recipe), kdedge.export(run) and kdedge.bench(run): each package sets its module's class to
    this one (the customisation the Python docs describe under "Customizing module attribute access");
    calling it calls kdedge.api's function."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from kdedge import api

        return getattr(api, self.__name__.rsplit(".", 1)[-1])(*args, **kwargs)


def __getattr__(name: str) -> Any:
    if name in _API:
        from kdedge import api

        return getattr(api, name)
    if name in ("train", "export", "bench"):  # the packages, callable (see CallablePackage)
        import importlib

        return importlib.import_module(f"kdedge.{name}")
    raise AttributeError(f"module 'kdedge' has no attribute '{name}'")
