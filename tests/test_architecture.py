"""The import graph holds the design: stages import only earlier stages, no circles,
and the stages after the network never import torch.

Every import counts, also those inside functions: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "reportgen"

# The pipeline's order. A module may import modules of its own unit and of units with a
# lower rank, never a later one. ``compute`` and ``report`` share a rank: neither may
# import the other (the orchestrator, ``pipeline``, joins them).
RANKS = {
    "version": 0,  # reportgen.version: __version__, imported by the stages that stamp it
    "errors": 0,
    "options": 0.5,  # the stages' small option groups
    "settings": 1,  # the run's full settings: known to the CLI, the API, the cache key
    # reportgen.statistics: the per-channel statistics, defined once for every stage
    "statistics": 1,
    # reportgen.explanations: the explanation methods, declared once for every stage
    "explanations": 0.25,
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
    # The package root: a facade over the API (analyze, build_report) and __version__;
    # nothing inside the package imports it.
    "reportgen": 13,
}
TORCH_FREE = ("inputs", "analysis", "results", "imaging", "report", "tools")
# The network stage's output type, imported by the stages after it.
TORCH_FREE_MODULES = ("reportgen.nn.channel_stats", "reportgen.statistics")


def module_name(path: Path, package_dir: Path = PACKAGE) -> str:
    parts = path.relative_to(package_dir.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _typing_only_blocks(tree: ast.AST) -> set[int]:
    """ids of the nodes under ``if TYPE_CHECKING:``: never run, so no import circle."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                skipped.update(id(n) for n in ast.walk(child))
    return skipped


def imported_modules(path: Path, package_dir: Path = PACKAGE, typing_only: bool = True) -> set[str]:
    """Every module a file imports, at any depth, relative imports resolved; for
    ``from X import name`` both X and X.name (the name may be a submodule).
    ``typing_only`` False: leave out the imports under ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    here = module_name(path, package_dir).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    skipped = set() if typing_only else _typing_only_blocks(tree)
    names: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
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


def package_modules(package_dir: Path) -> dict[str, Path]:
    return {module_name(p, package_dir): p for p in sorted(package_dir.rglob("*.py"))}


MODULES = package_modules(PACKAGE)


def internal_graph(package_dir: Path = PACKAGE, typing_only: bool = True) -> dict[str, set[str]]:
    """Module -> the package's modules it imports, the package root and parent packages
    included (``from reportgen.report import paths`` runs ``reportgen/report/__init__``)."""
    modules = package_modules(package_dir)
    graph = {}
    for name, path in modules.items():
        found = imported_modules(path, package_dir, typing_only)
        graph[name] = {m for m in found if m in modules and m != name}
    return graph


def import_circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every circle a depth-first walk of ``graph`` meets, each as its path of modules."""
    seen: dict[str, int] = {}  # 1: on the stack, 2: done
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        seen[node] = 1
        for target in sorted(graph.get(node, ())):
            if seen.get(target) == 1:
                cycles.append([*stack[stack.index(target) :], target])
            elif target not in seen:
                visit(target, [*stack, target])
        seen[node] = 2

    for node in sorted(graph):
        if node not in seen:
            visit(node, [node])
    return cycles


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
        for target in targets:
            dest = unit(target)
            if dest == source:
                continue
            if RANKS.get(dest, 0) >= RANKS[source]:
                wrong.append(f"{module} -> {target}")
    assert not wrong, "imports against the pipeline's direction:\n" + "\n".join(sorted(wrong))


def test_no_import_circles() -> None:
    """Every import that runs counts: lazy ones, of parent packages and of the root."""
    cycles = import_circles(internal_graph(typing_only=False))
    assert not cycles, "import circles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_a_circle_through_a_parent_package_is_found() -> None:
    graph = {
        "pkg": {"pkg.api"},  # the root's facade imports the API
        "pkg.api": {"pkg.stage"},
        "pkg.stage": {"pkg"},  # ``from pkg import __version__``
        "pkg.other": {"pkg.stage"},
    }
    assert import_circles(graph) == [["pkg", "pkg.api", "pkg.stage", "pkg"]]
    graph["pkg.stage"] = set()
    assert import_circles(graph) == []


def test_a_planted_circle_fails_the_check(tmp_path: Path) -> None:
    """The circle issue 22 removed, planted again in a copy: a stage imports __version__
    from the package root, whose facade imports the API, which imports that stage."""
    copy = tmp_path / "reportgen"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert not import_circles(internal_graph(copy, typing_only=False))
    errors = copy / "errors.py"
    errors.write_text(errors.read_text() + "\nfrom reportgen import __version__\n")
    cycles = import_circles(internal_graph(copy, typing_only=False))
    assert any(c[0] == "reportgen" and "reportgen.errors" in c for c in cycles), cycles


def test_typing_only_imports_are_no_circle(tmp_path: Path) -> None:
    copy = tmp_path / "reportgen"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    errors = copy / "errors.py"
    errors.write_text(
        errors.read_text()
        + "\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import reportgen\n"
    )
    assert not import_circles(internal_graph(copy, typing_only=False))
    assert import_circles(internal_graph(copy))  # counted where typing imports are asked for


@pytest.mark.parametrize("stage", TORCH_FREE)
def test_stages_after_the_network_never_import_torch(stage: str) -> None:
    offenders = [
        name
        for name, path in MODULES.items()
        if unit(name) == stage
        and {m.split(".")[0] for m in imported_modules(path, typing_only=False)}
        & {"torch", "torchvision"}
    ]
    assert not offenders


@pytest.mark.parametrize("module", TORCH_FREE_MODULES)
def test_the_network_stages_output_types_never_import_torch(module: str) -> None:
    # a torch type named for mypy only (under TYPE_CHECKING) loads no torch
    names = {m.split(".")[0] for m in imported_modules(MODULES[module], typing_only=False)}
    assert not names & {"torch", "torchvision"}


# The optional engine's libraries, as the code imports them, and the one module that may.
DASK_LIBRARIES = {"dask", "distributed"}
DASK_ENGINE = "reportgen.compute.dask_engine"


def test_only_the_dask_engine_imports_dask() -> None:
    importers = {
        name
        for name, path in MODULES.items()
        if DASK_LIBRARIES & {m.split(".")[0] for m in imported_modules(path)}
    }
    assert importers == {DASK_ENGINE}  # the engine does: the check sees what it guards


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
    loaded = _modules_after_import("reportgen.nn.gradients", "reportgen.analysis")
    assert "torch" in loaded  # sanity: the subprocess really imported it
    assert "jinja2" not in loaded


# --- one definition of each statistic -------------------------------------------------

TEMPLATES = PACKAGE.parent / "templates"
# A file that spells this many different statistic names as strings lists statistics:
# fewer are one statistic used for what it is (selection by mean) or the same word for
# another thing (a filter's "mean" picture, the normalisation's "mean" and "std").
LIST_OF_STATISTICS = 3
FILES_NAMING_STATISTICS = 3  # reportgen/statistics.py and at most two users


def statistic_strings(path: Path, names: set[str]) -> set[str]:
    """The statistic names a file spells as strings: Python string constants, or quoted
    words in a template."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".py":
        constants = (n.value for n in ast.walk(ast.parse(text)) if isinstance(n, ast.Constant))
        return {value for value in constants if isinstance(value, str) and value in names}
    return {m.group(2) for m in re.finditer(r"(['\"])(\w+)\1", text) if m.group(2) in names}


def files_listing_statistics(package_dir: Path, templates: Path) -> list[str]:
    from reportgen.statistics import statistic_names

    names = set(statistic_names())
    sources = [*sorted(package_dir.rglob("*.py")), *sorted(templates.glob("*.html"))]
    sources += sorted(templates.glob("*.js"))
    return [
        str(path.relative_to(package_dir.parent))
        for path in sources
        if len(statistic_strings(path, names)) >= LIST_OF_STATISTICS
    ]


def test_statistic_names_are_spelled_out_in_at_most_three_files() -> None:
    listing = files_listing_statistics(PACKAGE, TEMPLATES)
    assert "reportgen/statistics.py" in listing  # the check sees the definition
    assert len(listing) <= FILES_NAMING_STATISTICS, listing


def test_a_second_list_of_statistic_names_fails_the_check(tmp_path: Path) -> None:
    copy = tmp_path / "reportgen"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    templates = tmp_path / "templates"
    shutil.copytree(TEMPLATES, templates)
    before = files_listing_statistics(copy, templates)
    text = copy / "report" / "text.py"
    text.write_text(text.read_text() + '\nSTAT_KEYS = ("mean", "max", "min", "std")\n')
    page = templates / "model.html"
    page.write_text(page.read_text() + "{{ grid_tools([('std', 'std'), ('min', 'min'), "
                    "('sparsity', 'sparsity')]) }}\n")  # fmt: skip
    after = files_listing_statistics(copy, templates)
    assert sorted(set(after) - set(before)) == ["reportgen/report/text.py", "templates/model.html"]
    assert len(after) > FILES_NAMING_STATISTICS
