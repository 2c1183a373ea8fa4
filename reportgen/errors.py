"""Errors a user can fix. The CLI prints them as one ``Error: ...`` line."""

from __future__ import annotations


class ReportgenError(Exception):
    """A problem with the user's input or environment, not a bug.

    The message names the input and the reason, and where it helps, what to do.
    """

    exit_code = 1


class UsageError(ReportgenError):
    """Options that contradict each other or are out of range (exit code 2)."""

    exit_code = 2
