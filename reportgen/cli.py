"""The command line: parse options, build settings, call the API. Nothing else.

Heavy modules (torch, torchvision, matplotlib) are imported inside the commands so
that ``reportgen --help`` answers at once.
"""

from __future__ import annotations

import logging
import signal
import sys
from typing import Any

import click

from reportgen import __version__
from reportgen.errors import ReportgenError
from reportgen.settings import DEVICES, SCALES, STRATEGIES

log = logging.getLogger("reportgen")


class ReportgenGroup(click.Group):
    """Turns user errors into one ``Error: ...`` line and the right exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        verbose = "-v" in sys.argv[1:] or "--verbose" in sys.argv[1:]
        try:
            return super().invoke(ctx)
        except ReportgenError as exc:
            if verbose:
                log.exception("details")
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("Error: interrupted; any previous report was left as it was", err=True)
            ctx.exit(130)
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise
        except MemoryError:
            click.echo("Error: out of memory; try a smaller --batch-size or fewer layers", err=True)
            ctx.exit(1)
        except OSError as exc:
            if verbose:
                log.exception("details")
            where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
            click.echo(f"Error: {exc.strerror or exc}{where}", err=True)
            ctx.exit(1)
        except Exception as exc:  # a bug: still one line, the traceback with -v
            if verbose:
                raise
            click.echo(
                f"Error: internal error {type(exc).__name__}: {exc} (run with -v for details)",
                err=True,
            )
            ctx.exit(1)


def _configure_logging(verbose: bool, quiet: bool) -> None:
    level = logging.DEBUG if verbose else (logging.ERROR if quiet else logging.WARNING)
    logging.basicConfig(level=level, format="%(levelname)s: %(message)s", stream=sys.stderr)


def _on_sigterm(_signum: int, _frame: Any) -> None:
    # Unwind like Ctrl-C, so the staging folder is removed and the old report kept.
    raise KeyboardInterrupt


@click.group(cls=ReportgenGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="reportgen")
@click.option("-v", "--verbose", is_flag=True, help="Log details; show tracebacks of errors.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors.")
@click.pass_context
def main(ctx: click.Context, verbose: bool, quiet: bool) -> None:
    """See inside torchvision CNNs: activations, filters and overlays as a static HTML report."""
    _configure_logging(verbose, quiet)
    ctx.obj = {"verbose": verbose, "quiet": quiet}


def _parse_channels(_ctx: click.Context, _param: click.Parameter, value: str | None) -> tuple[int, ...]:
    if not value:
        return ()
    try:
        return tuple(int(part) for part in value.replace(" ", "").split(",") if part)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of channel numbers") from None


@main.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output", default="report", show_default=True, help="Report folder to write.")
@click.option("-m", "--model", "models", multiple=True, help="torchvision model name; repeatable. [default: resnet18]")
@click.option("--weights", default="imagenet", show_default=True,
              help="imagenet (the model's DEFAULT), a torchvision weights name (IMAGENET1K_V1, DEFAULT), none, or a state-dict file.")
@click.option("--weights-dir", type=click.Path(file_okay=False), envvar="REPORTGEN_WEIGHTS_DIR",
              help="Folder of checkpoints under torchvision's file names, searched first. [env: REPORTGEN_WEIGHTS_DIR]")
@click.option("--offline", is_flag=True, help="Never download weights. [env: REPORTGEN_OFFLINE=1]")
@click.option("-l", "--layer", "layers", multiple=True,
              help="Layer name, glob pattern (layer?.0.conv1) or 'conv'; repeatable. [default: every Conv2d]")
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for random weights (--weights none).")
@click.option("--batch-size", type=int, default=8, show_default=True, help="Images per forward pass.")
@click.option("--jobs", type=int, default=None, help="Threads encoding images. [default: all cores]")
@click.option("--strategy", type=click.Choice(STRATEGIES), default="top_mean", show_default=True,
              help="How channels are selected for detail, per input and layer.")
@click.option("--top-k", type=int, default=12, show_default=True, help="Channels selected per layer and input.")
@click.option("--channels", callback=_parse_channels, help="Channels for --strategy manual, e.g. 0,5,10.")
@click.option("--interesting-mean", type=float, default=0.3, show_default=True)
@click.option("--interesting-max", type=float, default=2.0, show_default=True)
@click.option("--colormap", default="jet", show_default=True, help="Any matplotlib colormap.")
@click.option("--alpha", type=float, default=0.5, show_default=True, help="Opacity of the map in overlays, 0..1.")
@click.option("--scale", type=click.Choice(SCALES), default="channel", show_default=True,
              help="Colour range: each map its own, or one per layer.")
@click.option("--strict", is_flag=True, help="Fail at the first input that cannot be used.")
@click.pass_context
def run(ctx: click.Context, inputs: tuple[str, ...], output: str, models: tuple[str, ...],
        layers: tuple[str, ...], channels: tuple[int, ...], jobs: int | None, strict: bool,
        **options: Any) -> None:
    """Analyse INPUTS (image files or folders) and write an HTML report."""
    from reportgen.pipeline import build_report
    from reportgen.settings import RunSettings

    settings = RunSettings(
        inputs=inputs, output=output, models=models or ("resnet18",), layers=layers,
        channels=channels, extra={"jobs": jobs, "strict": strict}, **options,
    )
    signal.signal(signal.SIGTERM, _on_sigterm)
    quiet = ctx.obj["quiet"]
    show_bar = not quiet and sys.stderr.isatty()
    with click.progressbar(length=0, label="analysing", file=sys.stderr) if show_bar else _NoBar() as bar:
        summary = build_report(settings, progress=_progress_for(bar, settings, show_bar))
    if not quiet:
        for warning in summary.warnings:
            click.echo(f"Warning: {warning}", err=True)
        click.echo(
            f"Wrote {summary.report}/index.html: {len(summary.inputs)} inputs, "
            f"{len(summary.models)} models, {summary.pages} pages in {summary.seconds:.1f} s"
        )


class _NoBar:
    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *args: Any) -> None:
        return None

    def update(self, n: int) -> None:
        return None


def _progress_for(bar: Any, settings: Any, show: bool) -> Any:
    if not show:
        return None

    def advance(count: int) -> None:
        bar.update(count)

    return advance


@main.command()
@click.argument("model")
@click.option("--all", "show_all", is_flag=True, help="Also list containers (blocks, Sequential).")
def layers(model: str, show_all: bool) -> None:
    """List the layers of MODEL that -l can pick (names, types, output shapes at 224x224)."""
    import torch
    from torchvision.models import get_model

    from reportgen.layers import trace_layers
    from reportgen.models import check_model_name

    check_model_name(model)
    torch.manual_seed(0)
    module = get_model(model, weights=None)
    infos = trace_layers(module, 224)
    width = max(len(i.name) for i in infos)
    click.echo(f"{'layer':<{width}}  {'type':<20} output shape   (* = Conv2d, picked by default)")
    for info in infos:
        if not (show_all or info.is_leaf):
            continue
        shape = "x".join(map(str, info.output_shape)) if info.output_shape else "not run"
        mark = "*" if info.is_conv else " "
        click.echo(f"{info.name:<{width}}  {info.type:<20} {shape:<14} {mark}")


@main.command()
def models() -> None:
    """List the torchvision classification models reportgen can run."""
    from reportgen.models import classification_models

    for name in classification_models():
        click.echo(name)
