"""The package's import graph points one way (docs/STYLE.md):

    cli -> api / commands -> train | export | bench | experiments | report -> files.rundir
        -> models, data, losses, recipe, runtime -> files, ui, registry, errors

Read statically from the source: every import, also those inside functions and under `if TYPE_CHECKING:`
(a hint is an arrow too: a cycle hidden behind TYPE_CHECKING is still a design that points both ways), so
a new arrow the wrong way fails here, before anyone imports anything.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "kdedge"

# Layers, top to bottom; a module may import its own layer's and lower layers' modules only.
LAYERS: list[set[str]] = [
    {"kdedge.cli", "kdedge.__main__", "kdedge.api"},
    {"kdedge.commands"},
    {"kdedge.train", "kdedge.export", "kdedge.bench", "kdedge.experiments", "kdedge.report"},
    {"kdedge.files.rundir"},  # a run folder: its recipe, summary and weights, and the models they rebuild
    {"kdedge.models", "kdedge.data", "kdedge.losses", "kdedge.recipe", "kdedge.runtime"},
    {"kdedge.files", "kdedge.ui", "kdedge.registry", "kdedge.errors", "kdedge"},
]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The kdedge modules `path` imports (`from kdedge.x import y` counts as kdedge.x.y when that is a
    module, else kdedge.x), wherever the import statement stands."""
    found: set[str] = set()
    pending: list[ast.AST] = [ast.parse(path.read_text())]
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == "kdedge"}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "kdedge":
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.add(full if full in modules else node.module)
        pending.extend(ast.iter_child_nodes(node))
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    """{module: kdedge modules it imports}, for every module of the package."""
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    modules = set(paths)
    graph = {name: imports_of(path, modules) - {name} for name, path in paths.items()}
    # kdedge/__init__.py is the Python API's facade: kdedge.distill & co. import kdedge.api on first use
    # (and every package may import __version__ / CallablePackage from it); its lazy arrows up are the API
    graph["kdedge"] = set()
    return graph


def layer_of(module: str) -> int:
    for depth, layer in enumerate(LAYERS):
        if any(module == prefix or module.startswith(prefix + ".") for prefix in layer if prefix != "kdedge"):
            return depth
    if module == "kdedge":
        return len(LAYERS) - 1
    raise AssertionError(f"{module} is in no layer of tests/test_architecture.py: add it where it belongs")


def test_every_module_has_a_layer(graph):
    for module in graph:
        layer_of(module)


def test_imports_point_down_the_layers(graph):
    wrong = [
        f"{module} imports {target}"
        for module, targets in graph.items()
        for target in targets
        if layer_of(target) < layer_of(module)
    ]
    assert not wrong, "imports against the layer order:\n" + "\n".join(sorted(wrong))


def test_nothing_imports_the_cli_and_only_the_entry_points_import_commands(graph):
    """The entry points are the CLI and the Python API (kdedge.api: the same commands, for scripts)."""
    for module, targets in graph.items():
        if not module.startswith("kdedge.cli"):
            assert not any(t.startswith("kdedge.cli") for t in targets) or module == "kdedge.__main__", module
        if not module.startswith(("kdedge.commands", "kdedge.cli")) and module != "kdedge.api":
            assert not any(t.startswith("kdedge.commands") for t in targets), module


def test_training_and_reports_never_import_experiments(graph):
    """Experiments (sweeps, studies, search) drive the training pipeline and are read by reports through their
    files; the pipeline calls its own steps (the bias fix lives in kdedge.train)."""
    for module, targets in graph.items():
        if module.startswith(("kdedge.train", "kdedge.report")):
            assert not any(t.startswith("kdedge.experiments") for t in targets), (module, targets)


def test_runtime_never_imports_torch():
    """kdedge.runtime is what a device runs without PyTorch: no torch import at module level (a runner that
    needs torch, ExecuTorch's, imports it inside the call)."""
    for path in (PACKAGE / "runtime").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(n.split(".")[0] in ("torch", "torchvision", "timm") for n in names), (path, names)


def test_bench_never_imports_training(graph):
    for module, targets in graph.items():
        if module.startswith("kdedge.bench"):
            assert not any(t.startswith("kdedge.train") for t in targets), (module, targets)


def test_no_import_cycle(graph):
    """Tarjan's strongly connected components: any component of more than one module is a cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    assert not cycles, f"import cycles: {cycles}"


def test_registry_depends_on_errors_only(graph):
    assert graph["kdedge.registry"] <= {"kdedge.errors"}
