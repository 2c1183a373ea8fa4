"""Each model of a run: built and planned (``load_planned_models``), its per-input results
computed where ``--cluster`` says (``cluster_engines``, ``model_engine``), and its
pictures and statistics files written into the staging folder (``run_model``)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reportgen.compute.batch import PictureOptions
from reportgen.compute.encoding import ImageEncoder
from reportgen.imaging import pictures as imaging
from reportgen.inputs.files import InputFile
from reportgen.options import (
    ComputeOptions,
    EngineOptions,
    FeatureVisOptions,
    ModelOptions,
    PictureChoices,
)
from reportgen.pipeline.inputs import ReportOutput
from reportgen.report import paths
from reportgen.results.records import InputResult, ModelFacts, PictureKey
from reportgen.results.run import ModelResults, StatsTable

if TYPE_CHECKING:
    from reportgen.compute.dask_engine import DaskEngines
    from reportgen.compute.model_run import Engine
    from reportgen.nn.models import LoadedModel
    from reportgen.report.statsfile import StatsFile

Progress = Callable[[int], None]


def load_planned_models(
    models: ModelOptions, compute: ComputeOptions
) -> tuple[Any, list[LoadedModel], list[ModelFacts], list[str]]:
    """The device, the run's models (seeded as every run seeds them), their planned
    layers (``compute.model_run.plan_layers``) and what was said on the way."""
    import torch

    from reportgen.compute.model_run import plan_layers
    from reportgen.compute.model_setup import load_models
    from reportgen.nn.models import select_device

    torch.manual_seed(models.seed)
    device = select_device(models.device)
    loaded, warnings = load_models(models, device)
    facts = []
    for model in loaded:
        planned, notes = plan_layers(model, compute)
        facts.append(planned)
        warnings.extend(notes)
    return device, loaded, facts, warnings


def picture_options(
    choices: PictureChoices, detail: frozenset[str], encode: bool
) -> PictureOptions:
    """The pictures every per-input result of the run carries (its cache key names them:
    a run and its shards must make the same)."""
    return PictureOptions(
        table=imaging.colormap_table(choices.colormap),
        alpha=choices.alpha,
        sheets=choices.sheets,
        overlay_files=choices.overlay_files,
        scale_by_layer=choices.scale == "layer",
        encode=encode,
        detail=detail,
    )


def pictures_label(options: PictureOptions) -> str:
    """Which pictures the per-input results carry, as the cache key records it."""
    layout = "map sheets" if options.sheets else "map files"
    return f"{layout}; {'encoded' if options.encode else 'none'}"


def cluster_engines(
    engine: EngineOptions,
    work: WorkerSetup,
) -> contextlib.AbstractContextManager[DaskEngines | None]:
    """Where per-input results are computed: ``--cluster``'s Dask cluster (the optional
    extra, imported only then), else this process (a context holding None)."""
    if engine.cluster is None:
        return contextlib.nullcontext(None)
    from reportgen.compute.dask_engine import DaskEngines

    return DaskEngines(engine.cluster, work.models, work.compute, work.pictures, work.recorded)


@dataclass(frozen=True)
class WorkerSetup:
    """What a process needs to compute a model's per-input results: the models to build,
    what to compute, which pictures, and the recorded settings that key the models."""

    models: ModelOptions
    compute: ComputeOptions
    pictures: PictureOptions
    recorded: Mapping[str, Any]  # the run's recorded settings (RunOptions.recorded)


def model_engine(
    engines: DaskEngines | None,
    model: LoadedModel,
    facts: ModelFacts,
    work: WorkerSetup,
    encoder: ImageEncoder,
) -> Engine:
    """A model's engine: on the run's cluster (``engines``), else in this process."""
    if engines is not None:
        return engines.for_model(model, facts)
    from reportgen.compute.model_run import LocalEngine

    return LocalEngine(model, facts, work.compute, work.pictures, encoder)


@dataclass(frozen=True)
class ModelPass:
    """What every model of a run shares."""

    work: WorkerSetup
    feature_vis: FeatureVisOptions
    single_file: bool
    usable: list[InputFile]
    input_sha: dict[str, str]
    staged: ReportOutput  # the staging folder, or nowhere (analysis only)
    encoder: ImageEncoder
    cache_dir: Path | None
    shard_roots: tuple[Path, ...] = ()  # a merge: the shards hold every result
    engines: DaskEngines | None = None  # --cluster; None: this process


@dataclass
class ModelRun:
    """A model's merged results and, per layer, every input's statistics."""

    results: ModelResults
    stats: dict[str, StatsFile | StatsTable]


def run_model(
    run: ModelPass, model: LoadedModel, facts: ModelFacts, progress: Progress | None
) -> ModelRun:
    """One model: its inputs, then the work after all inputs; pictures and statistics
    files into the report."""
    from reportgen.compute import model_run
    from reportgen.compute.weights_view import encode_kernels

    options = run.work.pictures
    store = _result_store(run, model, facts)
    stats = _stats_tables(run, facts)
    emit = _picture_writer(run, facts) if options.encode else None
    if emit is not None:
        for layer in facts.layers:
            encode_kernels(layer, run.encoder, emit, options.sheets)
    engine = model_engine(run.engines, model, facts, run.work, run.encoder)
    results = model_run.run_inputs(
        facts,
        run.usable,
        run.work.compute,
        options.detail,
        store,
        engine,
        _input_writer(run, facts, stats),
        progress,
    )
    for table in stats.values():
        table.close()
    if run.feature_vis.enabled:
        _feature_vis(run, model, results, store.cache if store.model_key else None, emit)
    results.example_boxes = model_run.example_boxes(model, results)
    if emit is not None:
        # Examples that are whole views (units, fields that cover the view) are in a folder
        # report already: crops only for the others.
        cropped = {
            layer.name: results.example_boxes[layer.name]
            for layer in facts.layers
            if not layer.examples_are_views or not options.sheets
        }
        model_run.encode_example_strips(
            model, cropped, run.usable, run.encoder, emit, options.sheets
        )
    return ModelRun(results, stats)


def _feature_vis(
    run: ModelPass,
    model: LoadedModel,
    results: ModelResults,
    cache: Any,
    emit: Callable[[PictureKey, bytes], None] | None,
) -> None:
    """The model's feature visualisations, unit by unit from the cache (or a merge's
    shards), else optimised where the run computes: on the cluster, else here."""
    from reportgen.compute.featurevis import feature_vis_for_model

    where = None
    if run.engines is not None:
        from reportgen.compute.fv_tasks import cluster_optimiser

        where = cluster_optimiser(run.engines, model.id, results.facts, run.feature_vis)
    sheets = run.work.pictures.sheets
    feature_vis_for_model(model, results, run.feature_vis, emit, cache, where, sheets)


def _result_store(run: ModelPass, model: LoadedModel, facts: ModelFacts) -> Any:
    """The model's per-input results in the cache (and, for a merge, the shards)."""
    from reportgen.compute.cached import ResultStore, model_key

    keyed = run.cache_dir is not None or bool(run.shard_roots)
    key = model_key(model, run.work.recorded, pictures_label(run.work.pictures)) if keyed else ""
    return ResultStore(
        run.cache_dir,
        key,
        run.input_sha,
        facts.layers,
        run.work.pictures.detail,
        read_only_roots=run.shard_roots,
        complete=bool(run.shard_roots),
        contributions=facts.contribution_fields,
    )


def _picture_writer(run: ModelPass, facts: ModelFacts) -> Callable[[PictureKey, bytes], None]:
    from reportgen.report.records import picture_path

    def write_picture(picture: PictureKey, data: bytes) -> None:
        run.staged.write(picture_path(facts.id, "", picture), data)

    return write_picture


def _input_writer(
    run: ModelPass, facts: ModelFacts, stats: dict[str, StatsFile | StatsTable]
) -> Callable[[InputResult, int], None]:
    """Where a finished input goes: its pictures to the encoders (then the staging
    folder), its statistics to the layers' tables."""
    from reportgen.report.records import picture_path

    def write_input(result: InputResult, index: int) -> None:
        for picture, data in result.pictures.items():
            run.encoder.submit(
                run.staged.write, picture_path(facts.id, result.input_id, picture), data
            )
        for name, table in stats.items():
            table.write(index, result.layers[name].stats)

    return write_input


def _stats_tables(run: ModelPass, facts: ModelFacts) -> dict[str, StatsFile | StatsTable]:
    """Per layer, where every input's statistics go: a file of a folder report, else
    memory (``analyze``, single-file reports)."""
    from reportgen.report.output import StagedReport
    from reportgen.report.statsfile import StatsFile

    count = len(run.usable)
    staged = run.staged
    if not isinstance(staged, StagedReport) or run.single_file:
        return {
            layer.name: StatsTable(count, layer.channels, facts.stats_fields)
            for layer in facts.layers
        }
    return {
        layer.name: StatsFile(
            staged,
            paths.stats_file(facts.id, layer.name),
            count,
            layer.channels,
            facts.stats_fields,
        )
        for layer in facts.layers
    }
