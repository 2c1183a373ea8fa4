"""The command line: click commands that parse options, build settings and call the API."""

from reportgen.cli.commands import main

__all__ = ["main"]
