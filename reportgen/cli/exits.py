"""How a command ends: user errors as one ``Error: ...`` line with the right exit code
(1 failure, 2 usage, 130 interrupted), Ctrl-C and SIGTERM during and after a command,
and the logging that ``-v``/``-q`` choose. The commands (``cli.commands``) run inside
``ReportgenGroup``.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from typing import Any

import click

from reportgen.cli.ending import interrupted_code, leave, register_finish
from reportgen.errors import ReportgenError

log = logging.getLogger("reportgen")


class ReportgenGroup(click.Group):
    """Turns user errors into one ``Error: ...`` line and the right exit code."""

    def main(
        self,
        args: Any = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """Click's own parse errors also become one ``Error:`` line (exit 2)."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        try:
            result = super().main(args, prog_name, complete_var, False, **extra)
        except click.UsageError as exc:
            where = f" (see '{exc.ctx.command_path} --help')" if exc.ctx else ""
            click.echo(f"Error: {exc.format_message()}{where}", err=True)
            _leave(exc.exit_code)
        except click.ClickException as exc:
            click.echo(f"Error: {exc.format_message()}", err=True)
            _leave(exc.exit_code)
        except click.exceptions.Abort:
            # Click's word for Ctrl-C (or SIGTERM) outside the command: before it began,
            # or just after it ended (then the report may already be in place).
            _leave(interrupted_code())
        _leave(result if isinstance(result, int) else 0)

    def invoke(self, ctx: click.Context) -> Any:
        def verbose() -> bool:
            # -v before the subcommand is parsed before invoke(); after it, while the
            # subcommand is: read it when an error needs it.
            return bool((ctx.obj or {}).get("verbose") or ctx.params.get("verbose"))

        # What an earlier command of this process committed (tests invoke many): none
        # when the output module was never imported, and importing it here would cost
        # `--help` numpy and the report stage (issue 25: help under 0.3 s).
        output = sys.modules.get("reportgen.report.output")
        if output is not None:
            output.forget_commits()
        _signal_arrived[0] = False
        try:
            return super().invoke(ctx)
        except ReportgenError as exc:
            if verbose():
                log.exception("details")
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            _exit_interrupted(ctx)
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise
        except MemoryError:
            click.echo("Error: out of memory; try a smaller --batch-size or fewer layers", err=True)
            ctx.exit(1)
        except OSError as exc:
            if verbose():
                log.exception("details")
            where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
            click.echo(f"Error: {exc.strerror or exc}{where}", err=True)
            ctx.exit(1)
        except Exception as exc:  # a bug: still one line, the traceback with -v
            if _interrupted_by_signal(exc):
                _exit_interrupted(ctx)
            if verbose():
                raise
            click.echo(
                f"Error: internal error {type(exc).__name__}: {exc} (run with -v for details)",
                err=True,
            )
            ctx.exit(1)


def _exit_interrupted(ctx: click.Context) -> None:
    ctx.exit(interrupted_code())


def _leave(code: int) -> None:
    """``sys.exit(code)``: the command is over (``cli.ending``)."""
    leave(code, _on_signal, _MAIN_PID)


def _interrupted_by_signal(exc: BaseException) -> bool:
    """A Ctrl-C (or SIGTERM) that lands inside a C extension's import surfaces as that
    import's own error (numpy and torch say "ImportError: initialization failed"), with
    the KeyboardInterrupt lost or only chained. It is still an interruption, not a bug."""
    if _signal_arrived[0]:
        return True
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        if isinstance(link, KeyboardInterrupt):
            return True
        seen.add(id(link))
        link = link.__cause__ or link.__context__
    return False


def configure_logging(verbose: bool, quiet: bool) -> None:
    level = logging.DEBUG if verbose else (logging.ERROR if quiet else logging.WARNING)
    logging.basicConfig(level=level, format="%(levelname)s: %(message)s", stream=sys.stderr)
    logging.getLogger().setLevel(level)  # again, for -v/-q after the subcommand


def _verbosity(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    """-v/-q after the subcommand (``reportgen run ... -q``) mean what they mean before it."""
    if not value:
        return
    ctx.ensure_object(dict)
    ctx.obj[str(param.name)] = True
    configure_logging(bool(ctx.obj.get("verbose")), bool(ctx.obj.get("quiet")))


def verbosity_options(command: Any) -> Any:
    """-v and -q on a subcommand, as on the group."""
    command = click.option(
        "-q",
        "--quiet",
        is_flag=True,
        expose_value=False,
        callback=_verbosity,
        help="Print nothing but errors.",
    )(command)
    return click.option(
        "-v",
        "--verbose",
        is_flag=True,
        expose_value=False,
        callback=_verbosity,
        help="Log details; show tracebacks of errors.",
    )(command)


_MAIN_PID = os.getpid()
_last_signal = [int(signal.SIGINT)]
_signal_arrived = [False]


def _on_signal(signum: int, _frame: Any) -> None:
    """SIGTERM (and SIGINT) unwind like Ctrl-C, so the staging folder is removed and the
    old report kept. In a process forked for the pages, the main process reports: the
    worker leaves at once, without a traceback."""
    if os.getpid() != _MAIN_PID:
        os._exit(128 + signum)
    _last_signal[0] = signum
    _signal_arrived[0] = True
    raise KeyboardInterrupt


def _unraisable(info: Any) -> None:
    """Python runs signal handlers where it can, also inside a finaliser (a weakref
    callback, ``__del__``), where the KeyboardInterrupt cannot unwind anything and is
    printed as "Exception ignored". Then the signal is sent again, a moment later, to
    interrupt the run where it can; nothing is printed."""
    if issubclass(info.exc_type, KeyboardInterrupt) and os.getpid() == _MAIN_PID:
        import threading

        again = threading.Timer(0.01, os.kill, (os.getpid(), _last_signal[0]))
        again.daemon = True
        again.start()
        return
    _previous_unraisable(info)


_previous_unraisable = sys.unraisablehook


def install_signal_handlers() -> None:
    global _MAIN_PID, _previous_unraisable
    _MAIN_PID = os.getpid()
    register_finish()  # before torch and Dask register their atexit callbacks
    if sys.unraisablehook is not _unraisable:
        _previous_unraisable = sys.unraisablehook
        sys.unraisablehook = _unraisable
    signal.signal(signal.SIGTERM, _on_signal)
    # SIGINT ignored by whoever started us (a background job of a script) stays ignored.
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        signal.signal(signal.SIGINT, _on_signal)
