"""The import graph holds the design: stages import only earlier stages, no circles,
and the stages after the network never import torch.

Every import counts, also those inside functions: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "reportgen"

# The pipeline's order. A module may import modules of its own unit and of units with a
# lower rank, never a later one. ``compute`` and ``report`` share a rank: neither may
# import the other (the orchestrator, ``pipeline``, joins them).
RANKS = {
    "reportgen": 0,  # the package root: __version__ (its API facade imports lazily)
    "errors": 0,
    "version": 0,  # reportgen.version: __version__, importing nothing
    "options": 0.5,  # the stages' small option groups
    "settings": 1,  # the run's full settings: known to the CLI, the API, the cache key
    "inputs": 2,
    "nn": 3,
    "analysis": 4,
    "results": 5,
    "imaging": 6,
    "compute": 7,
    "report": 7,
    "tools": 8,
    "pipeline": 9,
    "notebook": 9,  # reportgen.notebook: the notebook view under its first import path
    "run_options": 9.5,  # the full settings cut into the stages' options (for api, sharding)
    "api": 10,
    "sharding": 10,  # reportgen shard/merge: beside the pipeline, over it and results.shards
    "cli": 11,
    "__main__": 12,
}
TORCH_FREE = ("inputs", "analysis", "results", "imaging", "report", "tools")
# The network stage's output type, imported by the stages after it.
TORCH_FREE_MODULES = ("reportgen.nn.channel_stats",)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at any depth, relative imports resolved; for
    ``from X import name`` both X and X.name (the name may be a submodule)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    here = module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package[: len(package) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and (
                (isinstance(node.func, ast.Name) and node.func.id == "__import__")
                or (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
            )
        ):
            names.add(node.args[0].value)
    return names


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def internal_graph() -> dict[str, set[str]]:
    graph = {}
    for name, path in MODULES.items():
        graph[name] = {m for m in imported_modules(path) if m in MODULES and m != name}
    return graph


def unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "reportgen"


def test_the_ast_helper_sees_nested_and_relative_imports(tmp_path: Path) -> None:
    sample = PACKAGE / "report" / "_sample_for_test.py"
    sample.write_text("def f():\n    import torch.nn\n    from . import paths\n")
    try:
        found = imported_modules(sample)
    finally:
        sample.unlink()
    assert {"torch.nn", "reportgen.report", "reportgen.report.paths"} <= found


def test_every_unit_has_a_rank() -> None:
    units = {unit(m) for m in MODULES} - {"reportgen"}
    assert units <= set(RANKS), f"units without a rank: {sorted(units - set(RANKS))}"


def test_stages_import_only_earlier_stages() -> None:
    wrong = []
    for module, targets in internal_graph().items():
        source = unit(module)
        if source == "reportgen":
            continue  # the package root: a lazy facade over the API
        for target in targets:
            dest = unit(target)
            if dest == source:
                continue
            if RANKS.get(dest, 0) >= RANKS[source]:
                wrong.append(f"{module} -> {target}")
    assert not wrong, "imports against the pipeline's direction:\n" + "\n".join(sorted(wrong))


def test_no_import_circles() -> None:
    graph = internal_graph()
    # A package imports its submodules when they are named in ``from pkg import sub``;
    # the edge pkg/__init__ -> pkg.sub is not a dependency of the package on itself.
    for name in graph:
        graph[name] = {t for t in graph[name] if not name.startswith(t + ".")}
    seen: dict[str, int] = {}  # 1: on the stack, 2: done
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        seen[node] = 1
        for target in sorted(graph[node]):
            if seen.get(target) == 1:
                cycles.append([*stack[stack.index(target) :], target])
            elif target not in seen:
                visit(target, [*stack, target])
        seen[node] = 2

    for node in sorted(graph):
        if node not in seen:
            visit(node, [node])
    assert not cycles, "import circles:\n" + "\n".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize("stage", TORCH_FREE)
def test_stages_after_the_network_never_import_torch(stage: str) -> None:
    offenders = [
        name
        for name, path in MODULES.items()
        if unit(name) == stage
        and {m.split(".")[0] for m in imported_modules(path)} & {"torch", "torchvision"}
    ]
    assert not offenders


@pytest.mark.parametrize("module", TORCH_FREE_MODULES)
def test_the_network_stages_output_types_never_import_torch(module: str) -> None:
    names = {m.split(".")[0] for m in imported_modules(MODULES[module])}
    assert not names & {"torch", "torchvision"}


def test_the_core_never_imports_dask() -> None:
    offenders = [
        name
        for name, path in MODULES.items()
        if "dask" in {m.split(".")[0] for m in imported_modules(path)}
        and not name.startswith("reportgen.distributed")
    ]
    assert not offenders


def _modules_after_import(*modules: str) -> set[str]:
    code = (
        "import importlib, json, sys\n"
        f"for name in {list(modules)!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=PACKAGE.parent,
        check=True,
    )
    return set(json.loads(result.stdout))


def test_importing_the_torch_free_stages_loads_no_torch() -> None:
    wanted = [name for name in MODULES if unit(name) in TORCH_FREE] + list(TORCH_FREE_MODULES)
    loaded = _modules_after_import(*wanted)
    assert set(wanted) <= loaded
    assert "torch" not in loaded and "torchvision" not in loaded


def test_importing_the_network_stage_loads_torch_but_no_jinja2() -> None:
    loaded = _modules_after_import("reportgen.nn.capture", "reportgen.analysis")
    assert "torch" in loaded  # sanity: the subprocess really imported it
    assert "jinja2" not in loaded
