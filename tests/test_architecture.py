"""Stage boundaries: the report and imaging never need torch; analysis never needs jinja2."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "reportgen"


def _imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at any depth (also inside functions)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "__import__"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ) or (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            names.add(str(node.args[0].value))
    return names


def _top(names: set[str]) -> set[str]:
    return {name.split(".")[0] for name in names}


TORCH_FREE = sorted([PACKAGE / "imaging.py", *(PACKAGE / "report").glob("*.py")])


def test_the_ast_helper_sees_nested_imports(tmp_path: Path) -> None:
    sample = tmp_path / "m.py"
    sample.write_text("def f():\n    import torch.nn\n    from torchvision import models\n")
    assert _top(_imported_modules(sample)) == {"torch", "torchvision"}


@pytest.mark.parametrize("path", TORCH_FREE, ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_report_and_imaging_never_import_torch(path: Path) -> None:
    assert not _top(_imported_modules(path)) & {"torch", "torchvision"}


def test_analysis_never_imports_jinja2_or_the_report() -> None:
    names = _imported_modules(PACKAGE / "analysis.py")
    assert "jinja2" not in _top(names)
    assert not any(name.startswith("reportgen.report") for name in names)


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


def test_importing_report_and_imaging_loads_no_torch() -> None:
    report_modules = [
        f"reportgen.report.{p.stem}"
        for p in sorted((PACKAGE / "report").glob("*.py"))
        if p.stem != "__init__"
    ]
    loaded = _modules_after_import("reportgen.imaging", *report_modules)
    assert "reportgen.imaging" in loaded
    assert "torch" not in loaded and "torchvision" not in loaded


def test_importing_analysis_loads_no_jinja2() -> None:
    loaded = _modules_after_import("reportgen.analysis")
    assert "torch" in loaded  # sanity: the subprocess really imported it
    assert "jinja2" not in loaded
