"""The command line: parse options, build settings, call the API. Nothing else.

Heavy modules (torch, torchvision, matplotlib) are imported inside the commands so
that ``reportgen --help`` answers at once.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from typing import Any

import click

from reportgen import __version__
from reportgen.errors import ReportgenError
from reportgen.settings import (
    DEVICES,
    FV_CHANNELS,
    SCALES,
    SINGLE_FILE_OUTPUT,
    STRATEGIES,
    default_of,
)

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
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            click.echo(f"Error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        except click.exceptions.Abort:
            # Click's word for Ctrl-C (or SIGTERM) outside the command: before it began.
            click.echo("Error: interrupted; any previous report was left as it was", err=True)
            sys.exit(130)
        sys.exit(result if isinstance(result, int) else 0)

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
    from reportgen.report.output import committed_target

    done = committed_target()
    if done is not None:
        # The swap had happened: the new report is in place and complete.
        click.echo(
            f"Warning: interrupted after the new report was put in place: "
            f"{str(done)!r} is the complete new report",
            err=True,
        )
        ctx.exit(0)
    click.echo("Error: interrupted; any previous report was left as it was", err=True)
    ctx.exit(130)


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


def _configure_logging(verbose: bool, quiet: bool) -> None:
    level = logging.DEBUG if verbose else (logging.ERROR if quiet else logging.WARNING)
    logging.basicConfig(level=level, format="%(levelname)s: %(message)s", stream=sys.stderr)
    logging.getLogger().setLevel(level)  # again, for -v/-q after the subcommand


def _verbosity(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    """-v/-q after the subcommand (``reportgen run ... -q``) mean what they mean before it."""
    if not value:
        return
    ctx.ensure_object(dict)
    ctx.obj[str(param.name)] = True
    _configure_logging(bool(ctx.obj.get("verbose")), bool(ctx.obj.get("quiet")))


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


def _install_signal_handlers() -> None:
    global _MAIN_PID, _previous_unraisable
    _MAIN_PID = os.getpid()
    if sys.unraisablehook is not _unraisable:
        _previous_unraisable = sys.unraisablehook
        sys.unraisablehook = _unraisable
    signal.signal(signal.SIGTERM, _on_signal)
    # SIGINT ignored by whoever started us (a background job of a script) stays ignored.
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        signal.signal(signal.SIGINT, _on_signal)


@click.group(cls=ReportgenGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="reportgen")
@click.option("-v", "--verbose", is_flag=True, help="Log details; show tracebacks of errors.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors.")
@click.pass_context
def main(ctx: click.Context, verbose: bool, quiet: bool) -> None:
    """See inside torchvision CNNs: activations, filters and overlays as a static HTML report."""
    _configure_logging(verbose, quiet)
    ctx.obj = {"verbose": verbose, "quiet": quiet}


def _joined(values: tuple[float, ...]) -> str | None:
    """A list option's default as its command-line text (0,5,10); None for none."""
    return ",".join(str(v) for v in values) or None


def _parse_channels(
    _ctx: click.Context, _param: click.Parameter, value: str | None
) -> tuple[int, ...]:
    if not value:
        return ()
    try:
        return tuple(int(part) for part in value.replace(" ", "").split(",") if part)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a comma-separated list of channel numbers"
        ) from None


def _parse_floats(
    _ctx: click.Context, _param: click.Parameter, value: str | None
) -> tuple[float, ...]:
    if not value:
        return ()
    try:
        return tuple(float(part) for part in value.replace(" ", "").split(",") if part)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of numbers") from None


def _option_sources(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """--config and --from-manifest: their options become the command's defaults, so the
    command line wins, then --config, then --from-manifest."""
    if value is None:
        return None
    from reportgen.cli import config

    params = {p.name: p for p in ctx.command.params if p.name}
    layers = ctx.meta.setdefault("reportgen.defaults", {})
    if param.name == "config":
        layers["config"] = config.normalise(
            config.load_toml(value), params, f"--config {value}", skip=("config",)
        )
    else:
        settings, manifest = config.read_manifest_settings(value)
        layers["manifest"], ignored = config.manifest_options(
            settings, params, f"--from-manifest {value}"
        )
        ctx.meta["reportgen.manifest"] = manifest
        ctx.meta["reportgen.manifest_ignored"] = ignored
    ctx.default_map = {**layers.get("manifest", {}), **layers.get("config", {})}
    return value


# The options of ``reportgen run``, in the order --help lists them; ``shard`` takes the
# same (a shard is part of a run). Their defaults are RunSettings' (settings.py).
_RUN_SETTINGS_OPTIONS = [
    click.option(
        "--config",
        type=click.Path(dir_okay=False),
        is_eager=True,
        expose_value=False,
        callback=_option_sources,
        help="TOML file with options of this command (long names, e.g. top-k = 8); "
        "options on the command line win.",
    ),
    click.option(
        "--from-manifest",
        type=click.Path(),
        is_eager=True,
        expose_value=False,
        callback=_option_sources,
        help="Rebuild with the settings of an earlier report: its manifest.json, its folder, "
        "or a --single-file report.",
    ),
    click.option(
        "-o",
        "--output",
        default=default_of("output"),
        show_default=True,
        help="Report folder to write (with --single-file: the HTML file, "
        f"default {SINGLE_FILE_OUTPUT}).",
    ),
    click.option(
        "-m",
        "--model",
        "models",
        multiple=True,
        default=default_of("models"),
        help="torchvision model name, NAME=WEIGHTS for per-model weights (compare checkpoints), "
        "or package.module:factory for your own model; repeatable. "
        f"[default: {', '.join(default_of('models'))}]",
    ),
    click.option(
        "--label",
        "model_labels",
        multiple=True,
        default=default_of("model_labels"),
        help="Display label of each -m, in the same order "
        "(e.g. --label imagenet --label finetuned).",
    ),
    click.option(
        "--weights",
        default=default_of("weights"),
        show_default=True,
        help="imagenet (the model's DEFAULT), a torchvision weights name (IMAGENET1K_V1, "
        "DEFAULT), none, or a state-dict file.",
    ),
    click.option(
        "--weights-dir",
        type=click.Path(file_okay=False),
        envvar="REPORTGEN_WEIGHTS_DIR",
        default=default_of("weights_dir"),
        help="Folder of checkpoints under torchvision's file names, searched first. "
        "[env: REPORTGEN_WEIGHTS_DIR]",
    ),
    click.option(
        "--offline",
        is_flag=True,
        default=default_of("offline"),
        help="Never download weights. [env: REPORTGEN_OFFLINE=1]",
    ),
    click.option(
        "-l",
        "--layer",
        "layers",
        multiple=True,
        default=default_of("layers"),
        help="Layer name, glob pattern (layer?.0.conv1) or 'conv' (every Conv2d); "
        "repeatable. [default: every Conv2d whose output is a map, not 1x1 gates]",
    ),
    click.option(
        "--device", type=click.Choice(DEVICES), default=default_of("device"), show_default=True
    ),
    click.option(
        "--seed",
        type=int,
        default=default_of("seed"),
        show_default=True,
        help="Seed for random weights (--weights none).",
    ),
    click.option(
        "--batch-size",
        type=int,
        default=default_of("batch_size"),
        show_default=True,
        help="Images per forward pass.",
    ),
    click.option(
        "--cache-dir",
        type=click.Path(file_okay=False),
        default=default_of("cache_dir"),
        help="Cache of earlier results, for fast re-runs. [default: REPORTGEN_CACHE_DIR, "
        "else ~/.cache/reportgen]",
    ),
    click.option(
        "--no-cache",
        is_flag=True,
        default=default_of("no_cache"),
        help="Neither read nor write the cache.",
    ),
    click.option(
        "--strategy",
        type=click.Choice(STRATEGIES),
        default=default_of("strategy"),
        show_default=True,
        help="How channels are selected for detail, per input and layer.",
    ),
    click.option(
        "--top-k",
        type=int,
        default=default_of("top_k"),
        show_default=True,
        help="Channels selected per layer and input.",
    ),
    click.option(
        "--channels",
        default=_joined(default_of("channels")),
        callback=_parse_channels,
        help="Channels for --strategy manual, e.g. 0,5,10.",
    ),
    click.option(
        "--interesting-mean", type=float, default=default_of("interesting_mean"), show_default=True
    ),
    click.option(
        "--interesting-max", type=float, default=default_of("interesting_max"), show_default=True
    ),
    click.option(
        "--colormap",
        default=default_of("colormap"),
        show_default=True,
        help="Any matplotlib colormap.",
    ),
    click.option(
        "--alpha",
        type=float,
        default=default_of("alpha"),
        show_default=True,
        help="Opacity of the map in overlays, 0..1.",
    ),
    click.option(
        "--overlay-files/--no-overlay-files",
        default=default_of("overlay_files"),
        show_default=True,
        help="Also save each selected channel's overlay as a JPEG. Pages compose overlays "
        "in the browser from the view and the map either way.",
    ),
    click.option(
        "--scale",
        type=click.Choice(SCALES),
        default=default_of("scale"),
        show_default=True,
        help="Colour range: each map its own, or one per layer.",
    ),
    click.option(
        "--gradcam/--no-gradcam",
        default=default_of("gradcam"),
        show_default=True,
        help="Grad-CAM of each input's top class (and of --target-class).",
    ),
    click.option(
        "--gradcam-layer",
        default=default_of("gradcam_layer"),
        help="Layer for Grad-CAM. [default: the last Conv2d]",
    ),
    click.option(
        "--target-class",
        default=default_of("target_class"),
        help="Also Grad-CAM for this class: an index or a label.",
    ),
    click.option(
        "--examples",
        type=click.IntRange(min=0),
        default=default_of("examples"),
        show_default=True,
        help="Top inputs per channel across the run (dataset examples); 0 turns them off.",
    ),
    click.option(
        "--detail",
        multiple=True,
        default=default_of("detail"),
        metavar="N|all|NAME",
        help="Inputs that keep every channel's map: a number (the first N), 'all', or input "
        "names and globs (repeat it). [default: the first 32; all of a smaller run]",
    ),
    click.option(
        "--input-size",
        type=click.IntRange(min=8),
        default=default_of("input_size"),
        help="Custom models: crop size.",
    ),
    click.option(
        "--mean",
        default=_joined(default_of("mean")),
        callback=_parse_floats,
        help="Custom models: normalisation mean, e.g. 0.5,0.5,0.5.",
    ),
    click.option(
        "--std",
        default=_joined(default_of("std")),
        callback=_parse_floats,
        help="Custom models: normalisation std.",
    ),
    click.option(
        "--labels",
        "labels_file",
        type=click.Path(dir_okay=False),
        default=default_of("labels_file"),
        help="Class names, one a line (custom models, or to rename a model's classes).",
    ),
    click.option(
        "--feature-vis",
        is_flag=True,
        default=default_of("feature_vis"),
        help="Feature visualisation: for each chosen channel, an image optimised to excite it "
        "(slow on CPU: see docs/feature-vis.md).",
    ),
    click.option(
        "--fv-steps",
        type=click.IntRange(min=1),
        default=default_of("fv_steps"),
        show_default=True,
        help="Optimisation steps per feature visualisation.",
    ),
    click.option(
        "--fv-size",
        type=click.IntRange(min=32),
        default=default_of("fv_size"),
        show_default=True,
        help="Side of each feature visualisation, in pixels.",
    ),
    click.option(
        "--fv-channels",
        type=click.Choice(FV_CHANNELS),
        default=default_of("fv_channels"),
        show_default=True,
        help="Channels to visualise: those selected for any input, or every channel.",
    ),
    click.option(
        "--fv-negative",
        is_flag=True,
        default=default_of("fv_negative"),
        help="Also optimise the image that most suppresses each channel.",
    ),
    click.option(
        "--strict",
        is_flag=True,
        default=default_of("strict"),
        help="Fail at the first input that cannot be used.",
    ),
    click.option(
        "--single-file",
        is_flag=True,
        default=default_of("single_file"),
        help="Write the whole report as one HTML file at -o (images, CSS and JS inside).",
    ),
    click.option(
        "--max-single-file-mb",
        type=click.FloatRange(min=0, min_open=True),
        default=default_of("max_single_file_mb"),
        show_default=True,
        help="Warn when a --single-file report is larger than this.",
    ),
    click.option(
        "--allow-urls",
        is_flag=True,
        help="Also fetch the http(s) inputs a --from-manifest names (URLs given on the command "
        "line or in --config are always fetched).",
    ),
]
# Where run and shard compute per-input results (merge computes none).
_CLUSTER_OPTION = click.option(
    "--cluster",
    default=None,
    envvar="DASK_SCHEDULER_ADDRESS",
    show_envvar=True,
    callback=lambda _ctx, _param, value: value or None,  # an empty variable: no cluster
    help="Compute on a Dask cluster: local:N starts N worker processes here; "
    "tcp://HOST:PORT uses a running scheduler. Needs: pip install 'reportgen[dask]'.",
)
# How run, shard and merge are carried out (not part of the run's settings).
_RUNTIME_OPTIONS = [
    click.option(
        "--jobs",
        type=int,
        default=default_of("jobs"),
        help="Threads encoding images. [default: all cores]",
    ),
    click.option(
        "--json",
        "as_json",
        is_flag=True,
        help="Print a JSON summary on stdout (report, inputs, models, layers, warnings, seconds).",
    ),
]


def _with(options: list[Any]) -> Any:
    def decorate(command: Any) -> Any:
        for option in reversed(options):  # as if written as decorators, the first on top
            command = option(command)
        return command

    return decorate


# One decorator for the options of run and shard; merge takes the runtime ones.
run_options = _with([*_RUN_SETTINGS_OPTIONS, _CLUSTER_OPTION, *_RUNTIME_OPTIONS])
runtime_options = _with(_RUNTIME_OPTIONS)
_SETTINGS_AS_GIVEN = (
    "weights", "weights_dir", "offline", "device", "seed", "batch_size", "strategy",
    "top_k", "channels", "interesting_mean", "interesting_max", "colormap", "alpha",
    "overlay_files", "scale", "gradcam", "gradcam_layer", "target_class", "examples",
    "input_size", "mean", "std", "labels_file", "feature_vis", "fv_steps", "fv_size",
    "fv_channels", "fv_negative", "jobs", "cache_dir", "no_cache", "strict", "single_file",
    "max_single_file_mb", "cluster",
)  # fmt: skip


def settings_from_options(ctx: click.Context, options: dict[str, Any]) -> Any:
    """RunSettings from the parsed options of run (or shard); with --from-manifest, its
    checks and notes (a manifest's model and inputs are checked before anything runs)."""
    from reportgen.settings import RunSettings, default_output

    output = options["output"]
    if ctx.get_parameter_source("output") == click.core.ParameterSource.DEFAULT:
        output = default_output(options["single_file"])
    settings = RunSettings(
        inputs=options["inputs"],
        output=output,
        # An empty list (model = [] in --config) means the default model too.
        models=tuple(options["models"]) or default_of("models"),
        model_labels=tuple(options["model_labels"]),
        layers=tuple(options["layers"]),
        detail=tuple(options["detail"]),
        **{name: options[name] for name in _SETTINGS_AS_GIVEN},
    )
    quiet = ctx.obj["quiet"]
    manifest = ctx.meta.get("reportgen.manifest")
    sources = ctx.meta.get("reportgen.defaults", {})
    if manifest is not None:
        from reportgen.cli.config import check_manifest_values

        def of_manifest(name: str, value: Any) -> Any:
            """``value`` when the manifest gave it (not the command line or --config)."""
            from_map = ctx.get_parameter_source(name) == click.core.ParameterSource.DEFAULT_MAP
            return value if from_map and name not in sources.get("config", {}) else None

        check_manifest_values(
            "the manifest",
            of_manifest("models", list(options["models"])),
            of_manifest("weights", options["weights"]),
            of_manifest("inputs", list(options["inputs"])),
            options["allow_urls"],
        )
        ignored = ctx.meta.get("reportgen.manifest_ignored") or []
        if ignored and not quiet:
            click.echo(
                f"Warning: not taken from the manifest: {', '.join(ignored)} (a manifest sets "
                "only what a report shows; give these on the command line)",
                err=True,
            )
    if manifest is not None and not quiet:
        from reportgen.cli.config import rebuild_notes

        for note in rebuild_notes(manifest, settings.inputs):
            click.echo(f"Warning: {note}", err=True)
    return settings


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
    _install_signal_handlers()
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
    _install_signal_handlers()
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
@runtime_options
@click.pass_context
def merge(ctx: click.Context, shards: tuple[str, ...], output: str, **options: Any) -> None:
    """Build the report of a sharded run from its SHARDS (the -o folders of every
    'reportgen shard --part K/N', in any order), byte for byte the report 'reportgen run'
    with the same settings writes. The inputs and weights must be at the paths the
    shards were made with (relative to the working folder): they are read again, but
    no input goes through the network.

    Exit status: 0 report written, 1 failure (nothing replaced), 2 usage error,
    130 interrupted (nothing replaced).
    """
    from reportgen.sharding import merge_shards

    _install_signal_handlers()
    with _progress_bar(ctx.obj["quiet"]) as bar:
        summary = merge_shards(
            list(shards), _progress_for(bar), output=output, jobs=options["jobs"]
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

    from reportgen.inputs.files import printable
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
    """List the layers of MODEL that -l can pick (names, types, output shapes at 224x224)."""
    import torch

    from reportgen.nn.layers import default_layers, trace_layers
    from reportgen.nn.models import build_module, check_model_name

    check_model_name(model)
    torch.manual_seed(0)
    module = build_module(model)  # as `run` builds it (and without GoogLeNet's warning)
    infos = trace_layers(module, 224)
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
def models() -> None:
    """List the torchvision classification models reportgen can run."""
    from reportgen.nn.models import classification_models

    for name in classification_models():
        click.echo(name)
