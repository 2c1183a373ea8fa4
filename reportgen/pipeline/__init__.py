"""``reportgen run`` as a function: a run's options in, a report folder out.

The orchestrator, the one package that joins the computation and the report (neither
imports the other): inputs are found and read (``pipeline.inputs``); each model's inputs
go through ``compute.model_run`` (the network, the one cache branch, the encoders) and
each finished per-input result has its pictures written into the staging folder and is
folded into the model's results (``pipeline.models``); then the records are built from
the merged results and the pages rendered from the records (``pipeline.finish``); the
staging folder is swapped into place.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reportgen.compute.encoding import ImageEncoder
from reportgen.imaging import pictures as imaging
from reportgen.inputs.detail import detail_inputs
from reportgen.inputs.files import InputFile, SkippedInput
from reportgen.options import DETAIL_DEFAULT, RunOptions
from reportgen.pipeline.finish import (
    RunRecord,
    Written,
    attach_statistics,
    replay_run,
    report_data,
    write_report,
)
from reportgen.pipeline.inputs import (
    DiscardedOutput,
    ReportOutput,
    find_inputs,
    prepare_inputs,
    usable_warnings,
)
from reportgen.pipeline.models import (
    ModelPass,
    ModelRun,
    WorkerSetup,
    cluster_engines,
    load_planned_models,
    picture_options,
    run_model,
)
from reportgen.report import paths
from reportgen.report.data import InputRecord
from reportgen.results.summary import RunSummary

Progress = Callable[[int], None]


def build_report(
    options: RunOptions,
    progress: Progress | None = None,
    analysis_only: bool = False,
    shard_roots: tuple[Path, ...] = (),
) -> RunSummary:
    """Run the whole pipeline and put a complete report at ``options.report.output``
    (``analysis_only``: compute everything, encode and write nothing). ``shard_roots``:
    ``reportgen merge``: every per-input result is read from these shards (verified
    beforehand, read only), none is computed."""
    started = time.perf_counter()
    from reportgen.compute.cached import run_cache_key
    from reportgen.results.store import RunCache, cache_root

    cache_dir = cache_root(options.engine.cache_dir, options.engine.no_cache)
    files, skipped_found = find_inputs(options.inputs, cache_dir)
    whole_site = not (options.report.single_file or analysis_only)
    run_cache = RunCache(cache_dir if whole_site else None)
    run_key = run_cache_key(options, files, skipped_found) if run_cache.enabled else ""
    if run_key:
        replayed = replay_run(run_cache, run_key, options.report.output, started, progress)
        if replayed is not None:
            return replayed
    from reportgen.report.output import StagedReport

    report = options.report
    output: Any = (
        DiscardedOutput()
        if analysis_only
        else StagedReport(Path(report.output), single_file=report.single_file)
    )
    jobs = options.engine.workers(os.cpu_count())
    with output as staged:
        found = (files, skipped_found)
        data, runs = _computed(options, found, staged, (cache_dir, shard_roots), jobs, progress)
        how = Written(report.output, report.single_file, report.max_single_file_mb, jobs, started)
        summary = write_report(data, staged, how)
        if analysis_only:
            attach_statistics(summary.extra["analysis"], runs)
        manifest = summary.extra.pop("manifest", None)
        if run_key and manifest is not None:
            run_cache.save(run_key, staged.target, manifest)
        return summary


def _computed(
    options: RunOptions,
    found: tuple[list[InputFile], list[SkippedInput]],
    staged: ReportOutput,
    stores: tuple[Path | None, tuple[Path, ...]],
    jobs: int,
    progress: Progress | None,
) -> tuple[Any, list[ModelRun]]:
    """Every model over the usable inputs, their pictures into ``staged``: the report's
    data and each model's merged results. ``stores``: the cache folder and the shards a
    merge reads."""
    files, skipped_found = found
    cache_dir, shard_roots = stores
    encode = not isinstance(staged, DiscardedOutput)
    device, models, facts, warnings = load_planned_models(options.models, options.compute)
    encoder = ImageEncoder(jobs)
    try:
        views = [(m.preprocessing.resize_size, m.preprocessing.crop_size) for m in models]
        inputs, usable, skipped = prepare_inputs(files, skipped_found, staged, encoder, views)
        found_count = len(files) + len(skipped_found)
        warnings.extend(usable_warnings(options.inputs, found_count, usable, skipped))
        colorbar = f"{paths.ASSETS}/colormap-{options.pictures.colormap}.png"
        pictures = picture_options(options.pictures, _detail(options, usable, inputs), encode)
        if encode:
            staged.write(colorbar, imaging.colorbar_png(pictures.table))
        work = WorkerSetup(options.models, options.compute, pictures, options.recorded)
        with cluster_engines(options.engine, work) as engines:
            run = ModelPass(
                work,
                options.feature_vis,
                options.report.single_file,
                usable,
                {i.id: i.sha256 for i in inputs},
                staged,
                encoder,
                cache_dir,
                shard_roots,
                engines,
            )
            runs = [run_model(run, model, f, progress) for model, f in zip(models, facts)]
        encoder.drain()
    finally:
        encoder.close()
    record = RunRecord(
        options.shown, device, pictures.sheets, options.pictures.overlay_files, colorbar
    )
    return report_data(record, inputs, skipped, runs, warnings), runs


def _detail(
    options: RunOptions, usable: list[InputFile], inputs: list[InputRecord]
) -> frozenset[str]:
    """The detail inputs (every channel's map); marks their records."""
    detail = frozenset(detail_inputs(usable, options.inputs.detail, DETAIL_DEFAULT))
    for record in inputs:
        record.detail = record.id in detail
    return detail
