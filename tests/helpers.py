"""Small helpers shared by the tests: the CLI error contract, reproducible runs, maps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result


def invoke(*args: str) -> Result:
    """``reportgen ARGS`` in-process, with stdout and stderr kept apart."""
    from reportgen.cli.commands import main

    return CliRunner().invoke(main, list(args))


def error_line(result: Result, code: int | None = 1, *needles: str) -> str:
    """The user-error contract: exit ``code`` (any, when None), one ``Error:`` line and it
    comes last, no traceback; each of ``needles`` in that line. Returns the line."""
    if code is not None:
        assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def invoke_reproducible(args: list[str]) -> Result:
    """``reportgen ARGS`` with a fixed creation time, offline and without the cache, so
    two runs can be compared byte for byte."""
    from reportgen.cli.commands import main

    env = {
        "SOURCE_DATE_EPOCH": "1700000000",
        "REPORTGEN_OFFLINE": "1",
        "REPORTGEN_CACHE_DIR": "off",
    }
    return CliRunner().invoke(main, args, catch_exceptions=False, env=env)


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder`` with its bytes, to show a report was left untouched."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def map_tile(sheet: Path, entry: dict[str, Any], channel: int) -> Any:
    """Channel ``channel``'s map cut out of a map sheet (a PIL image), by the manifest's
    description of the layout, written out here rather than taken from reportgen.imaging.sheets."""
    from PIL import Image

    pad, width, height = entry["pad"], entry["tile_width"], entry["tile_height"]
    column, row = channel % entry["columns"], channel // entry["columns"]
    x0, y0 = column * (width + 2 * pad) + pad, row * (height + 2 * pad) + pad
    with Image.open(sheet) as image:
        image.load()
        return image.crop((x0, y0, x0 + width, y0 + height))
