"""``reportgen run`` as a function: inputs and settings in, a report folder out.

The orchestrator, the one module that joins the computation and the report (neither
imports the other): inputs are found; each model's inputs go through
``compute.model_run`` (the network, the one cache branch, the encoders); each finished
per-input result has its pictures written into the staging folder and is folded into
the model's results; then the records are built from the merged results and the pages
rendered from the records; the staging folder is swapped into place.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import logging
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reportgen.compute.batch import PictureOptions
from reportgen.compute.encoding import ImageEncoder
from reportgen.errors import ReportgenError, UsageError
from reportgen.imaging import pictures as imaging
from reportgen.inputs.detail import detail_inputs
from reportgen.inputs.files import (
    IMAGE_SUFFIXES,
    InputFile,
    SkippedInput,
    discover_inputs,
    load_image,
    shown_arguments,
)
from reportgen.report import paths
from reportgen.report.data import InputRecord, ModelRecord, ReportData, SkippedRecord
from reportgen.results.records import InputResult, PictureKey
from reportgen.results.run import ModelResults
from reportgen.results.summary import RunSummary
from reportgen.settings import (
    DETAIL_DEFAULT,
    SCALES,
    STRATEGIES,
    RunSettings,
    maps_in_sheets,
    report_settings,
    shareable,
)
from reportgen.statistics import file_fields
from reportgen.version import __version__

log = logging.getLogger("reportgen")
Progress = Callable[[int], None]


def validate_settings(settings: RunSettings, writes: bool = True) -> None:
    """Reject contradictory or out-of-range options before any work is done
    (``writes``: a report is written, so -o must lie apart from the inputs). Numbers
    first: each of its kind, in range and finite (``settings.check_values``)."""
    from reportgen.settings import check_values

    check_values(settings)
    if settings.strategy not in STRATEGIES:
        raise UsageError(
            f"unknown --strategy {settings.strategy!r}; use one of {', '.join(STRATEGIES)}"
        )
    if settings.scale not in SCALES:
        raise UsageError(f"unknown --scale {settings.scale!r}; use one of {', '.join(SCALES)}")
    if settings.top_k < 1:
        raise UsageError(f"--top-k must be at least 1, got {settings.top_k}")
    if not 0.0 <= settings.alpha <= 1.0:
        raise UsageError(f"--alpha must be between 0 and 1, got {settings.alpha}")
    if settings.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {settings.batch_size}")
    if settings.strategy == "manual" and not settings.channels:
        raise UsageError("--strategy manual needs --channels, e.g. --channels 0,5,10")
    if settings.channels and settings.strategy != "manual":
        raise UsageError("--channels is only used with --strategy manual")
    if any(c < 0 for c in settings.channels):
        raise UsageError("--channels must be non-negative channel indices")
    if not settings.inputs:
        raise UsageError("no inputs given")
    if not settings.models:
        raise UsageError("no model given (-m)")
    imaging.colormap_table(settings.colormap)  # raises with the valid names
    if writes:
        _check_output_apart(settings)
        from reportgen.results.store import cache_root

        cache = cache_root(settings.cache_dir, settings.no_cache)
        output = os.path.realpath(settings.output)
        if cache is not None and (
            os.path.realpath(cache) == output or os.path.realpath(cache).startswith(output + os.sep)
        ):
            raise UsageError(
                f"the cache folder {str(cache)!r} is inside -o {settings.output!r}, which "
                "the run replaces; give --cache-dir a folder elsewhere"
            )
    if settings.cluster is not None:
        from reportgen.compute.dask_engine import check_cluster

        check_cluster(settings.cluster)
    if settings.feature_vis:
        from reportgen.nn.featurevis import check_settings

        check_settings(settings.fv_steps, settings.fv_size, settings.fv_channels)


def _check_output_apart(settings: RunSettings) -> None:
    """The report folder may neither hold an input nor lie inside an input folder.

    A run replaces the whole output folder (inputs inside it would be lost), and a
    report inside an input folder would be read as inputs by the next run.
    """
    from reportgen.inputs.fetch import is_url

    output = os.path.realpath(settings.output)
    for argument in settings.inputs:
        if is_url(argument) or not os.path.exists(argument):
            continue
        source = os.path.realpath(argument)
        if source == output or source.startswith(output + os.sep):
            raise UsageError(
                f"input {argument!r} is inside the output folder {settings.output!r}, which "
                "the run replaces; choose another -o"
            )
        if os.path.isdir(source) and output.startswith(source + os.sep):
            raise UsageError(
                f"-o {settings.output!r} is inside the input folder {argument!r}: the report's "
                "pictures would be read as inputs by the next run; choose another -o"
            )


def creation_time() -> str:
    """UTC creation time; ``SOURCE_DATE_EPOCH`` makes it reproducible."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch:
        try:
            moment = _dt.datetime.fromtimestamp(int(epoch), tz=_dt.timezone.utc)
        except ValueError as exc:
            raise UsageError(
                f"SOURCE_DATE_EPOCH={epoch!r} is not a whole number of seconds"
            ) from exc
    else:
        moment = _dt.datetime.now(tz=_dt.timezone.utc).replace(microsecond=0)
    return moment.isoformat().replace("+00:00", "Z")


def environment(device: Any) -> dict[str, str]:
    import torch
    import torchvision

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "device": str(device),
    }


def build_report(
    settings: RunSettings,
    progress: Progress | None = None,
    analysis_only: bool = False,
    shard_roots: tuple[Path, ...] = (),
) -> RunSummary:
    """Run the whole pipeline and put a complete report at ``settings.output``
    (``analysis_only``: compute everything, encode and write nothing). ``shard_roots``:
    ``reportgen merge``: every per-input result is read from these shards (verified
    beforehand, read only), none is computed."""
    started = time.perf_counter()
    validate_settings(settings, writes=not analysis_only)
    files, skipped_found = find_inputs(settings)
    from reportgen.compute.cached import run_cache_key
    from reportgen.results.store import RunCache, cache_root

    cache_dir = cache_root(settings.cache_dir, settings.no_cache)
    whole_site = not (settings.single_file or analysis_only)
    run_cache = RunCache(cache_dir if whole_site else None)
    run_key = run_cache_key(settings, files, skipped_found) if run_cache.enabled else ""
    if run_key:
        replayed = replay_run(run_cache, run_key, settings, started, progress)
        if replayed is not None:
            return replayed

    from reportgen.report.output import StagedReport

    warnings: list[str] = []
    device, models, facts = load_planned_models(settings, warnings)
    jobs = settings.jobs or os.cpu_count() or 1
    output: Any = (
        DiscardedOutput()
        if analysis_only
        else StagedReport(Path(settings.output), single_file=settings.single_file)
    )
    with output as staged:
        encoder = ImageEncoder(jobs)
        try:
            views = [(m.preprocessing.resize_size, m.preprocessing.crop_size) for m in models]
            inputs, usable, skipped = prepare_inputs(files, skipped_found, staged, encoder, views)
            warnings += check_usable(settings, files, skipped_found, usable, skipped)
            colorbar = f"{paths.ASSETS}/colormap-{settings.colormap}.png"
            options = _picture_options(settings, usable, inputs, analysis_only)
            if options.encode:
                staged.write(colorbar, imaging.colorbar_png(options.table))
            input_sha = {i.id: i.sha256 for i in inputs}
            with cluster_engines(settings, options) as engines:
                run = _Run(
                    settings, options, usable, input_sha, staged, encoder, shard_roots, engines
                )
                results = [
                    _run_model(run, model, f, progress, cache_dir)
                    for model, f in zip(models, facts)
                ]
            encoder.drain()
        finally:
            encoder.close()
        data = _report_data(settings, device, inputs, skipped, results, warnings, colorbar)
        summary = _write_report(settings, data, staged, jobs, analysis_only, started)
        if analysis_only:
            _attach_statistics(summary.extra["analysis"], results)
        manifest = summary.extra.pop("manifest", None)
        if run_key and manifest is not None:
            run_cache.save(run_key, staged.target, manifest)
        return summary


def find_inputs(settings: RunSettings) -> tuple[list[InputFile], list[SkippedInput]]:
    """The run's inputs in run order (and those found but unusable), or an error when
    there is no image at all."""
    files, skipped_found = discover_inputs(settings.inputs)
    if not files and not skipped_found:
        raise ReportgenError(
            f"no image files found in {', '.join(repr(i) for i in settings.inputs)} "
            f"(looked for {', '.join(sorted(IMAGE_SUFFIXES))})"
        )
    return files, skipped_found


def load_planned_models(
    settings: RunSettings, warnings: list[str]
) -> tuple[Any, list[Any], list[Any]]:
    """The device, the run's models (seeded as every run seeds them) and their planned
    layers (``compute.model_run.plan_layers``)."""
    import torch

    from reportgen.compute.model_run import plan_layers
    from reportgen.compute.model_setup import load_models
    from reportgen.nn.models import select_device

    torch.manual_seed(settings.seed)
    device = select_device(settings.device)
    models = load_models(settings, device, warnings)
    return device, models, [plan_layers(model, settings, warnings) for model in models]


def cluster_engines(settings: RunSettings, options: PictureOptions) -> Any:
    """Where per-input results are computed: ``--cluster``'s Dask cluster (the optional
    extra, imported only then), else this process (a context holding None)."""
    if settings.cluster is None:
        return contextlib.nullcontext(None)
    from reportgen.compute.dask_engine import DaskEngines

    return DaskEngines(settings, options)


def model_engine(
    engines: Any,
    model: Any,
    facts: Any,
    settings: RunSettings,
    options: PictureOptions,
    encoder: ImageEncoder,
) -> Any:
    """A model's engine: on the run's cluster (``engines``), else in this process."""
    if engines is not None:
        return engines.for_model(model, facts)
    from reportgen.compute.model_run import LocalEngine

    return LocalEngine(model, facts, settings, options, encoder)


def _picture_options(
    settings: RunSettings,
    usable: list[InputFile],
    inputs: list[InputRecord],
    analysis_only: bool,
) -> PictureOptions:
    """Which pictures the per-input results carry; marks the detail inputs' records."""
    detail = frozenset(detail_inputs(usable, settings.detail, DETAIL_DEFAULT))
    for record in inputs:
        record.detail = record.id in detail
    return picture_options(settings, detail, encode=not analysis_only)


def picture_options(settings: RunSettings, detail: frozenset[str], encode: bool) -> PictureOptions:
    """The pictures every per-input result of the run carries (its cache key names them:
    a run and its shards must make the same)."""
    return PictureOptions(
        table=imaging.colormap_table(settings.colormap),
        alpha=settings.alpha,
        sheets=maps_in_sheets(settings),
        overlay_files=settings.overlay_files,
        scale_by_layer=settings.scale == "layer",
        encode=encode,
        detail=detail,
    )


def _attach_statistics(analysis: dict[str, Any], runs: list[_ModelRun]) -> None:
    """analyze(): every input's statistics as arrays [input, channel, field]."""
    for entry, model_run in zip(analysis["models"], runs):
        for layer in entry["layers"]:
            layer["stats"] = model_run.stats[layer["name"]].read()
            layer["stats_fields"] = list(file_fields())


def check_usable(
    settings: RunSettings,
    files: list[InputFile],
    skipped_found: list[SkippedInput],
    usable: list[InputFile],
    skipped: list[SkippedInput],
) -> list[str]:
    """The run's warnings for its skipped inputs; an error when it has no usable input,
    or under --strict any skipped one."""
    if settings.strict and skipped:
        raise ReportgenError(f"input {skipped[0].source!r}: {skipped[0].reason}")
    if not usable:
        raise ReportgenError(
            f"none of the {len(files) + len(skipped_found)} inputs could be used; "
            f"first problem: {skipped[0].source!r}: {skipped[0].reason}"
        )
    return [f"skipped input {item.source!r}: {item.reason}" for item in skipped]


@dataclass(frozen=True)
class _Run:
    """What every model of a run shares."""

    settings: RunSettings
    options: PictureOptions
    usable: list[InputFile]
    input_sha: dict[str, str]
    staged: Any  # the staging folder (report.output.StagedReport) or DiscardedOutput
    encoder: ImageEncoder
    shard_roots: tuple[Path, ...] = ()  # a merge: the shards hold every result
    engines: Any = None  # --cluster: compute.dask_engine.DaskEngines; None: this process


@dataclass
class _ModelRun:
    """A model's merged results and, per layer, every input's statistics."""

    results: ModelResults
    stats: dict[str, Any]  # layer -> StatsFile (folder reports) or StatsTable


def _run_model(
    run: _Run, model: Any, facts: Any, progress: Progress | None, cache_dir: Path | None
) -> _ModelRun:
    """One model: its inputs, then the work after all inputs; pictures and statistics
    files into the report."""
    settings, options, staged, encoder, usable = (
        run.settings,
        run.options,
        run.staged,
        run.encoder,
        run.usable,
    )
    from reportgen.compute import model_run
    from reportgen.compute.cached import ResultStore, model_key
    from reportgen.compute.weights_view import encode_kernels
    from reportgen.report.records import picture_path

    keyed = cache_dir is not None or bool(run.shard_roots)
    key = model_key(model, settings, pictures_label(options)) if keyed else ""
    store = ResultStore(
        cache_dir,
        key,
        run.input_sha,
        facts.layers,
        options.detail,
        read_only_roots=run.shard_roots,
        complete=bool(run.shard_roots),
    )
    stats = _stats_tables(run, facts)

    def write_input(result: InputResult, index: int) -> None:
        for picture, data in result.pictures.items():
            encoder.submit(staged.write, picture_path(facts.id, result.input_id, picture), data)
        for name, table in stats.items():
            table.write(index, result.layers[name].stats)

    def write_picture(picture: PictureKey, data: bytes) -> None:
        staged.write(picture_path(facts.id, "", picture), data)

    emit = write_picture if options.encode else None
    if emit is not None:
        for layer in facts.layers:
            encode_kernels(layer, encoder, emit, options.sheets)
    engine = model_engine(run.engines, model, facts, settings, options, encoder)
    results = model_run.run_inputs(
        facts, usable, settings, options, store, engine, write_input, progress
    )
    for table in stats.values():
        table.close()
    if settings.feature_vis:
        from reportgen.compute.featurevis import feature_vis_for_model

        feature_vis_for_model(model, results, settings, emit, store.cache if key else None)
    results.example_boxes = model_run.example_boxes(model, results)
    if emit is not None:
        # Examples that are whole views (units, fields that cover the view) are in a folder
        # report already: crops only for the others.
        cropped = {
            layer.name: results.example_boxes[layer.name]
            for layer in facts.layers
            if not layer.examples_are_views or not options.sheets
        }
        model_run.encode_example_strips(model, cropped, usable, encoder, emit, options.sheets)
    return _ModelRun(results, stats)


def pictures_label(options: PictureOptions) -> str:
    """Which pictures the per-input results carry, as the cache key records it."""
    layout = "map sheets" if options.sheets else "map files"
    return f"{layout}; {'encoded' if options.encode else 'none'}"


def _stats_tables(run: _Run, facts: Any) -> dict[str, Any]:
    """Per layer, where every input's statistics go: a file of a folder report, else
    memory (``analyze``, single-file reports)."""
    from reportgen.report.statsfile import StatsFile
    from reportgen.results.run import StatsTable

    count = len(run.usable)
    if not run.options.encode or run.settings.single_file:
        return {layer.name: StatsTable(count, layer.channels) for layer in facts.layers}
    return {
        layer.name: StatsFile(
            run.staged, paths.stats_file(facts.id, layer.name), count, layer.channels
        )
        for layer in facts.layers
    }


def _report_data(
    settings: RunSettings,
    device: Any,
    inputs: list[InputRecord],
    skipped: list[SkippedInput],
    runs: list[_ModelRun],
    warnings: list[str],
    colorbar: str,
) -> ReportData:
    from reportgen.report import statsfile
    from reportgen.report.compare import compare_all
    from reportgen.report.records import model_record

    records: list[ModelRecord] = []
    for run in runs:
        tables = {name: table.read() for name, table in run.stats.items()}
        record = model_record(run.results, tables, maps_in_sheets(settings), settings.overlay_files)
        for layer in record.layers:
            table = run.stats[layer.name]
            if isinstance(table, statsfile.StatsFile):
                layer.stats_file = statsfile.describe(table.relpath, *table.shape[:2])
        records.append(record)
    results = [run.results for run in runs]
    return ReportData(
        title="reportgen report",
        created=creation_time(),
        generator_version=__version__,
        environment=environment(device),
        settings=report_settings(shareable(settings, shown_arguments(settings.inputs))),
        inputs=inputs,
        skipped=[SkippedRecord(s.source, s.reason) for s in skipped],
        models=records,
        warnings=warnings,
        colorbar=colorbar,
        comparisons=compare_all(
            [r.facts for r in results], records, {i.id for i in inputs if i.detail}
        ),
    )


def _write_report(
    settings: RunSettings,
    data: ReportData,
    staged: Any,
    jobs: int,
    analysis_only: bool,
    started: float,
) -> RunSummary:
    """Pages and manifest into the staging folder (committed: swapped into place when the
    staging context ends). The summary's ``extra`` carries the manifest."""
    from reportgen.report.manifest import build_manifest
    from reportgen.report.site import write_single_file_report, write_site

    analysis: dict[str, Any] | None = None
    manifest: dict[str, Any] | None = None
    if analysis_only:
        pages, file_list = 0, list[dict[str, Any]]()
        analysis = build_manifest(data, [])
    elif settings.single_file:
        pages, file_list = write_single_file_report(
            data, staged, build_manifest, settings, data.warnings
        )
    else:
        pages = write_site(data, staged, jobs)
        file_list = staged.file_list()
        manifest = build_manifest(data, file_list)
        staged.commit(manifest)
    extra: dict[str, Any] = {}
    if analysis is not None:
        extra["analysis"] = analysis
    if manifest is not None:
        extra["manifest"] = manifest
    return RunSummary(
        report=str(Path(settings.output)),
        inputs=[i.source for i in data.inputs],
        skipped=[{"source": s.source, "reason": s.reason} for s in data.skipped],
        models=[m.id for m in data.models],
        layers={m.id: [layer.name for layer in m.layers] for m in data.models},
        warnings=data.warnings,
        pages=pages,
        files=1 if settings.single_file else len(file_list) + 1,
        seconds=round(time.perf_counter() - started, 3),
        extra=extra,
    )


def replay_run(
    run_cache: Any, key: str, settings: RunSettings, started: float, progress: Progress | None
) -> RunSummary | None:
    """A report kept in the cache under ``key``, put in place; None when there is none."""
    from reportgen.report.manifest_file import read_manifest
    from reportgen.report.output import StagedReport

    target = Path(settings.output)
    with StagedReport(target) as staged:
        manifest = run_cache.replay(key, staged.path_of, lambda folder: read_manifest(folder).data)
        if manifest is None:
            return None
        staged.commit(manifest)  # writes manifest.json anew: the kept copy stays untouched
    if progress:
        progress(len(manifest["inputs"]))
    files = manifest["files"]
    return RunSummary(
        report=str(target),
        inputs=[i["source"] for i in manifest["inputs"]],
        skipped=[{"source": s["source"], "reason": s["reason"]} for s in manifest["skipped"]],
        models=[m["id"] for m in manifest["models"]],
        layers={m["id"]: [layer["name"] for layer in m["layers"]] for m in manifest["models"]},
        warnings=list(manifest["warnings"]),
        pages=sum(1 for f in files if f["path"].endswith(".html")),
        files=len(files) + 1,
        seconds=round(time.perf_counter() - started, 3),
        extra={"cache": "replayed"},
    )


class DiscardedOutput:
    """Stands in for the report folder when only the analysis is wanted (``analyze``):
    nothing is encoded or written."""

    def __enter__(self) -> DiscardedOutput:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def write(self, relpath: str, data: bytes | str) -> str:
        raise AssertionError(f"analysis only: nothing is written ({relpath})")


def prepare_inputs(
    files: list[InputFile],
    skipped_found: list[SkippedInput],
    staged: Any,
    encoder: ImageEncoder,
    views: list[Any],
) -> tuple[list[InputRecord], list[InputFile], list[SkippedInput]]:
    """Read every input once: its facts and thumbnail, or why it is skipped (``views``:
    each model's (resize, crop); an input too large for one is skipped before decoding)."""
    records: list[InputRecord] = []
    usable: list[InputFile] = []
    skipped = list(skipped_found)
    write = not isinstance(staged, DiscardedOutput)
    for file in files:
        try:
            loaded = load_image(file, views)
        except ReportgenError as exc:
            log.warning("skipping %s: %s", file.source, exc)
            skipped.append(SkippedInput(file.source, str(exc)))
            continue
        thumbnail = paths.input_thumbnail(file.id)
        if write:
            encoder.submit(_write_thumbnail, staged, thumbnail, loaded.image)
        records.append(
            InputRecord(
                file.id,
                file.source,
                loaded.sha256,
                loaded.width,
                loaded.height,
                thumbnail,
                loaded.notes,
            )
        )
        usable.append(file)
    return records, usable, skipped


def _write_thumbnail(staged: Any, path: str, image: Any) -> None:
    staged.write(path, imaging.thumbnail_jpeg(image))
