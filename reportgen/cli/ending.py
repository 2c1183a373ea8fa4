"""How a command's process ends once its outcome is decided (issue 27).

``reportgen run`` (shard, merge) turns SIGINT and SIGTERM into KeyboardInterrupt while it
works (``commands._on_signal``), so the staging folder is removed and the old report
kept. Once the command is over, that would be wrong: a signal in the interpreter's
shutdown (atexit callbacks, joining threads, Dask closing its cluster) can no longer
undo anything. From then on a signal only says what is in place (the warning of
``interrupted_code`` when a report was swapped in) and the exit status stays; a second
one ends the process at once. And the process ends after its atexit callbacks, not in
Python's finalisation, which puts back the default SIGINT handler while it tears down
torch for up to a second: a Ctrl-C there killed the process by the signal (status -2,
nothing said) with the new report in place.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable
from typing import Any, NoReturn

import click


class _Ending:
    """The outcome of the command that ended in this process, if it was its own."""

    code: int | None = None
    main_pid = -1
    warned = False


def interrupted_code() -> int:
    """Say what an interruption left and give the exit status: 0 with a warning once the
    swap had happened (the new report is in place and complete), else 130."""
    from reportgen.report.output import committed_target

    done = committed_target()
    if done is not None:
        click.echo(_put_in_place(done), err=True)
        return 0
    click.echo("Error: interrupted; any previous report was left as it was", err=True)
    return 130


def _put_in_place(target: Any) -> str:
    return (
        f"Warning: interrupted after the new report was put in place: "
        f"{str(target)!r} is the complete new report"
    )


def leave(code: int, working_handler: Callable[[int, Any], None], main_pid: int) -> NoReturn:
    """``sys.exit(code)``; in a process of its own whose command installed
    ``working_handler`` (not a test's CliRunner, whose process goes on and keeps its
    Ctrl-C), signals from now on are ``_on_signal_when_done`` and the last atexit
    callback ends the process (``finish_now``)."""
    own = sys.stdout is sys.__stdout__ and sys.stderr is sys.__stderr__
    handlers = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))
    if own and working_handler in handlers:
        _Ending.code, _Ending.main_pid = code, main_pid
        signal.signal(signal.SIGTERM, _on_signal_when_done)
        if signal.getsignal(signal.SIGINT) is working_handler:
            signal.signal(signal.SIGINT, _on_signal_when_done)
    sys.exit(code)


def register_finish() -> None:
    """Register ``finish_now`` (again: at most once). Called before torch and Dask are
    imported, which register theirs later: atexit runs the last registered first, so
    this one runs after them."""
    atexit.unregister(finish_now)
    atexit.register(finish_now)


def finish_now() -> None:
    """The last atexit callback of a command's own process: end it with its exit
    status, before Python's finalisation."""
    code = _Ending.code
    if code is None or os.getpid() != _Ending.main_pid:
        return
    with contextlib.suppress(Exception):
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


def _on_signal_when_done(signum: int, _frame: Any) -> None:
    if os.getpid() != _Ending.main_pid:  # a forked worker: leave quietly
        os._exit(128 + signum)
    code = _Ending.code or 0
    if _Ending.warned:  # the second one: leave now
        with contextlib.suppress(Exception):
            sys.stderr.flush()
            sys.stdout.flush()
        os._exit(code)
    _Ending.warned = True
    from reportgen.report.output import committed_target

    done = committed_target()
    if done is not None and code == 0:
        with contextlib.suppress(Exception):
            print(_put_in_place(done), file=sys.stderr, flush=True)
