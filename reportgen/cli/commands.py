"""The command line's commands: parse options, build settings, call the API. Nothing
else: the options are ``cli.options``, how a command ends is ``cli.exits``.

Heavy modules (torch, torchvision, matplotlib) are imported inside the commands so
that ``reportgen --help`` answers at once.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import click

from reportgen.cli.exits import (
    ReportgenGroup,
    configure_logging,
    install_signal_handlers,
    verbosity_options,
)
from reportgen.cli.options import run_options, runtime_options, settings_from_options
from reportgen.settings import (
    default_of,
)
from reportgen.version import __version__

log = logging.getLogger("reportgen")


@click.group(cls=ReportgenGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="reportgen")
@click.option("-v", "--verbose", is_flag=True, help="Log details; show tracebacks of errors.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors.")
@click.pass_context
def main(ctx: click.Context, verbose: bool, quiet: bool) -> None:
    """See inside torchvision CNNs: activations, filters and overlays as a static HTML report."""
    configure_logging(verbose, quiet)
    ctx.obj = {"verbose": verbose, "quiet": quiet}


def _progress_bar(quiet: bool) -> Any:
    if not quiet and sys.stderr.isatty():
        return click.progressbar(length=0, label="analysing", file=sys.stderr)
    return _NoBar()


@main.command()
@verbosity_options
@click.argument("inputs", nargs=-1, required=True)
@run_options
@click.pass_context
def run(ctx: click.Context, **options: Any) -> None:
    """Analyse INPUTS (image files or folders) and write an HTML report.

    Exit status: 0 report written, 1 failure (nothing replaced), 2 usage error,
    130 interrupted (nothing replaced).
    """
    from reportgen.api import build_report

    settings = settings_from_options(ctx, options)
    install_signal_handlers()
    with _progress_bar(ctx.obj["quiet"]) as bar:
        summary = build_report(settings=settings, progress=_progress_for(bar))
    _print_summary(ctx, summary, options["as_json"], settings.single_file)


def _print_summary(ctx: click.Context, summary: Any, as_json: bool, single_file: bool) -> None:
    quiet = ctx.obj["quiet"]
    if not quiet:
        for warning in summary.warnings:
            click.echo(f"Warning: {warning}", err=True)
    if as_json:
        import dataclasses
        import json

        click.echo(json.dumps(dataclasses.asdict(summary), indent=2, ensure_ascii=False))
    elif not quiet:
        where = summary.report if single_file else f"{summary.report}/index.html"
        from reportgen.report.text import plural

        click.echo(
            f"Wrote {where}: {plural(len(summary.inputs), 'input')}, "
            f"{plural(len(summary.models), 'model')}, {plural(summary.pages, 'page')} "
            f"in {summary.seconds:.1f} s"
        )


@main.command()
@verbosity_options
@click.argument("inputs", nargs=-1, required=True)
@click.option(
    "--part",
    required=True,
    metavar="K/N",
    help="Which part of the run's inputs to compute: the K-th of N contiguous blocks, "
    "in the order run takes them.",
)
@run_options
@click.pass_context
def shard(ctx: click.Context, part: str, **options: Any) -> None:
    """Compute part K/N of a run's per-input results into a shard folder (-o,
    default part-K), for 'reportgen merge'. Takes every option of run.

    Exit status: 0 shard written, 1 failure (nothing replaced), 2 usage error,
    130 interrupted (nothing replaced).
    """
    from reportgen.results.shards import parse_part
    from reportgen.sharding import build_shard

    number, count = parse_part(part)
    settings = settings_from_options(ctx, options)
    if ctx.get_parameter_source("output") == click.core.ParameterSource.DEFAULT:
        import dataclasses

        settings = dataclasses.replace(settings, output=f"part-{number}")
    install_signal_handlers()
    with _progress_bar(ctx.obj["quiet"]) as bar:
        summary = build_shard(settings, number, count, progress=_progress_for(bar))
    if not ctx.obj["quiet"]:
        for warning in summary.warnings:
            click.echo(f"Warning: {warning}", err=True)
    if options["as_json"]:
        import dataclasses
        import json

        click.echo(json.dumps(dataclasses.asdict(summary), indent=2, ensure_ascii=False))
    elif not ctx.obj["quiet"]:
        click.echo(
            f"Wrote shard {summary.shard} (part {number} of {count}): "
            f"{len(summary.inputs)} inputs, {summary.entries} results"
        )


@main.command()
@verbosity_options
@click.argument("shards", nargs=-1, required=True)
@click.option(
    "-o",
    "--output",
    default=default_of("output"),
    show_default=True,
    help="Report folder to write.",
)
@click.option(
    "-m",
    "--model",
    "factories",
    multiple=True,
    metavar="PACKAGE.MODULE:FACTORY",
    help="A custom model the shards name, which merge may import: a shard is data, and "
    "code it names runs only when given here too (repeatable).",
)
@runtime_options
@click.pass_context
def merge(
    ctx: click.Context,
    shards: tuple[str, ...],
    output: str,
    factories: tuple[str, ...],
    **options: Any,
) -> None:
    """Build the report of a sharded run from its SHARDS (the -o folders of every
    'reportgen shard --part K/N', in any order), byte for byte the report 'reportgen run'
    with the same settings writes. The inputs and weights must be at the paths the
    shards were made with (relative to the working folder): they are read again, but
    no input goes through the network.

    Exit status: 0 report written, 1 failure (nothing replaced), 2 usage error,
    130 interrupted (nothing replaced).
    """
    from reportgen.sharding import merge_shards

    install_signal_handlers()
    with _progress_bar(ctx.obj["quiet"]) as bar:
        summary = merge_shards(
            list(shards), _progress_for(bar), factories, output=output, jobs=options["jobs"]
        )
    _print_summary(ctx, summary, options["as_json"], single_file=False)


@main.command()
@verbosity_options
@click.argument("report", type=click.Path(exists=True))
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
@click.pass_context
def verify(ctx: click.Context, report: str, as_json: bool) -> None:
    """Check that REPORT holds exactly the files its manifest lists, unchanged.

    Exit status: 0 intact, 1 differences (listed) or no manifest, 2 usage error.
    """
    from pathlib import Path

    from reportgen.inputs.safe_read import printable
    from reportgen.tools.verify import verify_report

    result = verify_report(Path(report))
    if as_json:
        import json

        click.echo(json.dumps(result.as_dict(), indent=2, ensure_ascii=False))
    else:
        for difference in result.differences:
            click.echo(difference.line())
        if result.ok:
            if not ctx.obj["quiet"]:
                click.echo(
                    f"OK: {printable(report)}: {result.checked} files as listed in "
                    f"manifest.json (manifest sha256 {result.manifest_sha256})"
                )
        else:
            click.echo(
                f"{printable(report)}: {len(result.differences)} differences from manifest.json",
                err=True,
            )
    if not result.ok:
        ctx.exit(1)


class _NoBar:
    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *args: Any) -> None:
        return None

    def update(self, n: int) -> None:
        return None


def _progress_for(bar: Any) -> Any:
    if isinstance(bar, _NoBar):
        return None

    def advance(count: int) -> None:
        bar.update(count)

    return advance


@main.command()
@verbosity_options
@click.argument("model")
@click.option("--all", "show_all", is_flag=True, help="Also list containers (blocks, Sequential).")
def layers(model: str, show_all: bool) -> None:
    """List the layers of MODEL that -l can pick (names, types, output shapes at 224x224,
    or at a timm/NAME model's own input size)."""
    from reportgen.nn.layers import default_layers, trace_layers
    from reportgen.nn.timm_models import module_for_listing

    module, size = module_for_listing(model)  # as `run` builds it, with random weights
    infos = trace_layers(module, size)
    picked = set(default_layers(infos))
    width = max(len(i.name) for i in infos)
    click.echo(
        f"{'layer':<{width}}  {'type':<20} output shape   "
        "(* = picked by default; + = Conv2d that -l conv adds)"
    )
    for info in infos:
        if not (show_all or info.is_leaf):
            continue
        shape = "x".join(map(str, info.output_shape)) if info.output_shape else "not run"
        added = info.is_conv and info.output_shape is not None
        mark = "*" if info.name in picked else "+" if added else " "
        click.echo(f"{info.name:<{width}}  {info.type:<20} {shape:<14} {mark}")


@main.command()
@verbosity_options
@click.argument("pattern", required=False, default="")
@click.option(
    "--timm", "from_timm", is_flag=True, help="List timm's models instead (run as -m timm/NAME)."
)
def models(pattern: str, from_timm: bool) -> None:
    """List the torchvision classification models reportgen can run, or with --timm
    timm's; PATTERN (a glob: 'convnext*', 'resnet50.*' for timm's pretrained tags) filters."""
    from reportgen.nn.timm_models import listed_models

    for name in listed_models(pattern, from_timm):
        click.echo(name)
