"""The one place a run's full settings are cut into what each stage uses.

``reportgen run``, ``shard``, ``merge`` and the API build a ``RunSettings`` (what a person
typed); this module checks it and hands back a ``RunOptions`` of small groups
(``reportgen.options``). Past this point no stage sees the full settings: the manifest
gets them as recorded data (``RunOptions.shown``), the cache key as hashed data
(``RunOptions.recorded``).
"""

from __future__ import annotations

import os

from reportgen.errors import UsageError
from reportgen.options import (
    ComputeOptions,
    EngineOptions,
    FeatureVisOptions,
    InputOptions,
    ModelOptions,
    PictureChoices,
    ReportOptions,
    RunOptions,
    SelectionOptions,
)
from reportgen.settings import RunSettings, check_values, report_settings, shareable


def run_options(settings: RunSettings, writes: bool = True) -> RunOptions:
    """``settings`` checked (numbers first, then each group's rules, then where the run
    writes: ``writes``) and cut into the groups of ``reportgen.options``."""
    from reportgen.inputs.discovery import shown_arguments

    check_values(settings)
    options = RunOptions(
        inputs=InputOptions(settings.inputs, settings.strict, settings.detail),
        models=model_options(settings),
        compute=compute_options(settings),
        pictures=PictureChoices(
            settings.colormap,
            settings.alpha,
            settings.scale,
            settings.overlay_files,
            sheets=not settings.single_file,
        ),
        feature_vis=FeatureVisOptions(
            settings.feature_vis,
            settings.fv_steps,
            settings.fv_size,
            settings.fv_channels,
            settings.fv_negative,
            settings.seed,
            settings.fv_batch,
            settings.fv_diversity,
        ),
        report=ReportOptions(settings.output, settings.single_file, settings.max_single_file_mb),
        engine=EngineOptions(
            settings.jobs, settings.cluster, settings.cache_dir, settings.no_cache
        ),
        recorded=report_settings(settings),
        shown=report_settings(shareable(settings, shown_arguments(settings.inputs))),
    )
    options.check()
    _check_resources(options, writes)
    return options


def model_options(settings: RunSettings) -> ModelOptions:
    return ModelOptions(
        specs=settings.models,
        weights=settings.weights,
        weights_dir=settings.weights_dir,
        offline=settings.offline,
        seed=settings.seed,
        device=settings.device,
        labels=settings.model_labels,
        input_size=settings.input_size,
        mean=settings.mean,
        std=settings.std,
        labels_file=settings.labels_file,
    )


def compute_options(settings: RunSettings) -> ComputeOptions:
    return ComputeOptions(
        layers=settings.layers,
        batch_size=settings.batch_size,
        selection=SelectionOptions(
            settings.strategy,
            settings.top_k,
            settings.channels,
            settings.interesting_mean,
            settings.interesting_max,
        ),
        gradcam=settings.gradcam,
        cams=settings.cam,
        gradcam_layer=settings.gradcam_layer,
        target_class=settings.target_class,
        contributions=settings.contributions,
        examples=settings.examples,
    )


def _check_resources(options: RunOptions, writes: bool) -> None:
    """What the groups cannot check alone: the colormap and the cluster are known to
    their stages; -o must lie apart from the inputs and the cache."""
    from reportgen.imaging.pictures import colormap_table

    colormap_table(options.pictures.colormap)  # raises with the valid names
    if writes:
        check_output_apart(options.inputs.arguments, options.report.output)
        _check_cache_apart(options.engine, options.report.output)
    if options.engine.cluster is not None:
        from reportgen.compute.dask_engine import check_cluster

        check_cluster(options.engine.cluster)


def check_output_apart(arguments: tuple[str, ...], output: str) -> None:
    """The report folder may neither hold an input nor lie inside an input folder.

    A run replaces the whole output folder (inputs inside it would be lost), and a
    report inside an input folder would be read as inputs by the next run.
    """
    from reportgen.inputs.fetch import is_url

    real_output = os.path.realpath(output)
    for argument in arguments:
        if is_url(argument) or not os.path.exists(argument):
            continue
        source = os.path.realpath(argument)
        if source == real_output or source.startswith(real_output + os.sep):
            raise UsageError(
                f"input {argument!r} is inside the output folder {output!r}, which "
                "the run replaces; choose another -o"
            )
        if os.path.isdir(source) and real_output.startswith(source + os.sep):
            raise UsageError(
                f"-o {output!r} is inside the input folder {argument!r}: the report's "
                "pictures would be read as inputs by the next run; choose another -o"
            )


def _check_cache_apart(engine: EngineOptions, output: str) -> None:
    from reportgen.results.store import cache_root

    cache = cache_root(engine.cache_dir, engine.no_cache)
    real_output = os.path.realpath(output)
    if cache is not None and (
        os.path.realpath(cache) == real_output
        or os.path.realpath(cache).startswith(real_output + os.sep)
    ):
        raise UsageError(
            f"the cache folder {str(cache)!r} is inside -o {output!r}, which "
            "the run replaces; give --cache-dir a folder elsewhere"
        )
