"""Small helpers shared by the CLI error tests."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner, Result


def invoke(*args: str) -> Result:
    """``reportgen ARGS`` in-process, with stdout and stderr kept apart."""
    from reportgen.cli import main

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
    from reportgen.cli import main

    env = {
        "SOURCE_DATE_EPOCH": "1700000000",
        "REPORTGEN_OFFLINE": "1",
        "REPORTGEN_CACHE_DIR": "off",
    }
    return CliRunner().invoke(main, args, catch_exceptions=False, env=env)


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder`` with its bytes, to show a report was left untouched."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
