"""The options of ``reportgen run`` and ``shard`` (and the runtime ones of ``merge``), in
the order ``--help`` lists them, each default read from ``RunSettings``; ``--config`` and
``--from-manifest`` as default sources; the parsed options as ``RunSettings``.
"""

from __future__ import annotations

from typing import Any

import click

from reportgen.settings import (
    DEVICES,
    FV_CHANNELS,
    SCALES,
    SINGLE_FILE_OUTPUT,
    STRATEGIES,
    default_of,
)


def _joined(values: tuple[object, ...]) -> str | None:
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


def _parse_names(
    _ctx: click.Context, _param: click.Parameter, value: str | None
) -> tuple[str, ...]:
    """A comma-separated list of names (--cam gradcam,layercam)."""
    return tuple(part for part in (value or "").replace(" ", "").split(",") if part)


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
    from reportgen.cli.config import (
        load_toml,
        manifest_options,
        normalise,
        read_manifest_settings,
    )

    params = {p.name: p for p in ctx.command.params if p.name}
    layers = ctx.meta.setdefault("reportgen.defaults", {})
    if param.name == "config":
        layers["config"] = normalise(
            load_toml(value), params, f"--config {value}", skip=("config",)
        )
    else:
        settings, manifest = read_manifest_settings(value)
        layers["manifest"], ignored = manifest_options(settings, params, f"--from-manifest {value}")
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
        help="torchvision model name, timm/NAME for a timm model (timm/resnet50.a1_in1k), "
        "NAME=WEIGHTS for per-model weights (compare checkpoints), "
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
        help="imagenet (the model's DEFAULT; for timm/NAME its pretrained weights from the "
        "Hugging Face cache), a torchvision weights name (IMAGENET1K_V1, DEFAULT), none, or "
        "a state-dict file (.safetensors or torch.save's).",
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
        "--cam",
        default=_joined(default_of("cam")),
        callback=_parse_names,
        show_default=True,
        help="Class activation map methods, comma-separated: gradcam, layercam (each "
        "at --gradcam-layer, beside each other on input pages).",
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
        "--contributions/--no-contributions",
        default=default_of("contributions"),
        show_default=True,
        help="Each channel's contribution (gradient x activation, summed over the map) "
        "to each input's top class (and --target-class), at every layer.",
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
        "--fv-batch",
        type=click.IntRange(min=1),
        default=default_of("fv_batch"),
        show_default=True,
        help="Feature visualisations optimised together: one unit of work (a Dask task, "
        "part of a shard); larger batches use a GPU better, and change the pictures.",
    ),
    click.option(
        "--fv-diversity",
        type=click.IntRange(min=1),
        default=default_of("fv_diversity"),
        show_default=True,
        help="Pictures per channel, each driving it and kept apart from the others "
        "(the diversity objective of Olah et al., Distill 2017); shown on channel pages.",
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
    "overlay_files", "scale", "gradcam", "cam", "gradcam_layer", "target_class", "contributions",
    "examples",
    "input_size", "mean", "std", "labels_file", "feature_vis", "fv_steps", "fv_size",
    "fv_channels", "fv_negative", "fv_batch", "fv_diversity",
    "jobs", "cache_dir", "no_cache", "strict",
    "single_file", "max_single_file_mb", "cluster",
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
