"""Units of a size a reader holds in mind, and the run's full settings kept where they
belong: part of the architecture's rules (beside ``test_architecture.py``).

* no function over 60 lines or 8 parameters (click commands aside: their parameters
  are the command's options), no module over 500 lines;
* the run's full settings (``reportgen.settings``) are known to the CLI, the API, the
  cut into the stages' options, the shard/merge entry points, and the pages that show
  them as typed; no stage imports them.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.test_architecture import MODULES, PACKAGE, imported_modules

MAX_FUNCTION_LINES = 60
MAX_PARAMETERS = 8
MAX_MODULE_LINES = 500

# Who may know the run's full settings (reportgen.settings): the command line, the API,
# the one cut into the stages' options, shard and merge (entry points like the API),
# and the pages' rendering of the recorded settings as options (typed_options).
SETTINGS_KNOWN_TO = (
    "reportgen.cli",
    "reportgen.api",
    "reportgen.run_options",
    "reportgen.sharding",
    "reportgen.results.shards",  # a shard's record of the run's settings (as a manifest's)
    "reportgen.results.shard_record",
    "reportgen.report.render",
    "reportgen.report.rebuild",  # the rebuild command, from the recorded settings as typed
    "reportgen.options",  # names RunSettings in its docstring only; imports nothing of it
)


@dataclass(frozen=True)
class Oversized:
    where: str
    what: str

    def __str__(self) -> str:
        return f"{self.where}: {self.what}"


def _is_click_command(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """A click command or group: decorated with ``@<group>.command(...)``, ``@click.command``
    or ``@click.group``; its parameters are its options."""
    for decorator in node.decorator_list:
        call = decorator.func if isinstance(decorator, ast.Call) else decorator
        if isinstance(call, ast.Attribute) and call.attr in ("command", "group"):
            return True
    return False


def _parameters(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    args = node.args
    names = [*args.posonlyargs, *args.args, *args.kwonlyargs]
    count = len(names) + (args.vararg is not None) + (args.kwarg is not None)
    if names and names[0].arg in ("self", "cls"):
        count -= 1
    return count


def oversized(source: str, where: str) -> list[Oversized]:
    """Every function of ``source`` over the limits, and the module itself if it is."""
    found = []
    lines = len(source.splitlines())
    if lines > MAX_MODULE_LINES:
        found.append(Oversized(where, f"module of {lines} lines (at most {MAX_MODULE_LINES})"))
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        if _is_click_command(node):
            continue
        length = (node.end_lineno or node.lineno) - node.lineno + 1
        if length > MAX_FUNCTION_LINES:
            found.append(Oversized(f"{where}:{node.lineno}", f"{node.name}() has {length} lines"))
        count = _parameters(node)
        if count > MAX_PARAMETERS:
            found.append(
                Oversized(f"{where}:{node.lineno}", f"{node.name}() has {count} parameters")
            )
    return found


def test_no_function_or_module_over_the_limits() -> None:
    found = [
        item
        for name, path in MODULES.items()
        for item in oversized(path.read_text(encoding="utf-8"), name)
    ]
    assert not found, "over the limits:\n" + "\n".join(str(item) for item in found)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("def f():\n" + "    x = 1\n" * 60 + "    return x\n", "f() has 62 lines"),
        ("def g(a, b, c, d, e, f, g, h, i):\n    pass\n", "g() has 9 parameters"),
        ("class C:\n    def m(self, a, b, c, d, e, f, g, h, *rest):\n        pass\n", "m() has 9"),
        ("x = 1\n" * 501, "module of 501 lines"),
    ],
)
def test_the_limits_catch_a_planted_long_unit(source: str, expected: str) -> None:
    assert any(expected in str(item) for item in oversized(source, "planted"))


def test_a_click_command_may_take_its_options() -> None:
    source = (
        "@main.command()\n"
        "def run(a, b, c, d, e, f, g, h, i):\n"
        "    pass\n"
        "def helper(a, b, c, d, e, f, g, h):\n"
        "    pass\n"
    )
    assert oversized(source, "cli") == []


def test_the_full_settings_stay_with_the_cli_the_api_and_the_cut() -> None:
    knowing = sorted(
        name
        for name, path in MODULES.items()
        if "reportgen.settings" in imported_modules(path)
        and name != "reportgen.settings"
        and not name.startswith(SETTINGS_KNOWN_TO)
    )
    assert not knowing, f"modules that import the run's full settings: {knowing}"


def test_the_settings_rule_sees_a_stage_that_imports_them(tmp_path: Path) -> None:
    planted = PACKAGE / "compute" / "_planted_settings_user.py"
    planted.write_text("from reportgen.settings import RunSettings\n", encoding="utf-8")
    try:
        assert "reportgen.settings" in imported_modules(planted)
    finally:
        planted.unlink()
