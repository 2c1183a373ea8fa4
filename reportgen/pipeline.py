"""``reportgen run`` as a function: inputs and settings in, a report folder out.

Stages run one way: inputs -> models -> capture -> analysis -> imaging -> report.
Images are encoded on worker threads while the next batch runs through the network.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reportgen import __version__
from reportgen.compute.cached import InputCacheContext, replay_run, run_cache_key
from reportgen.compute.encoding import ImageEncoder
from reportgen.compute.model_pass import plan_layers, run_model
from reportgen.compute.model_setup import compare_loaded_models, load_models
from reportgen.errors import ReportgenError, UsageError
from reportgen.imaging import pictures as imaging
from reportgen.inputs.files import (
    IMAGE_SUFFIXES,
    InputFile,
    SkippedInput,
    discover_inputs,
    load_image,
)
from reportgen.report import paths
from reportgen.report.data import (
    InputRecord,
    ReportData,
    SkippedRecord,
)
from reportgen.report.site import write_single_file_report, write_site
from reportgen.results.summary import RunSummary
from reportgen.settings import SCALES, STRATEGIES, RunSettings, report_settings

log = logging.getLogger("reportgen")
Progress = Callable[[int], None]


def validate_settings(settings: RunSettings) -> None:
    """Reject contradictory or out-of-range options before any work is done."""
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
    _check_output_apart(settings)
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
    settings: RunSettings, progress: Progress | None = None, analysis_only: bool = False
) -> RunSummary:
    """Run the whole pipeline and put a complete report at ``settings.output``
    (``analysis_only``: compute everything, write and encode nothing)."""
    started = time.perf_counter()
    validate_settings(settings)
    files, skipped_found = discover_inputs(settings.inputs)
    if not files and not skipped_found:
        raise ReportgenError(
            f"no image files found in {', '.join(repr(i) for i in settings.inputs)} "
            f"(looked for {', '.join(sorted(IMAGE_SUFFIXES))})"
        )
    from reportgen.results.store import RunCache, cache_root

    cache_dir = cache_root(settings.cache_dir, settings.no_cache)
    whole_site = not (settings.single_file or analysis_only)
    run_cache = RunCache(cache_dir if whole_site else None)
    run_key = run_cache_key(settings, files, skipped_found) if run_cache.enabled else ""
    if run_key:
        replayed = replay_run(run_cache, run_key, settings, started, progress)
        if replayed is not None:
            return replayed

    import torch

    from reportgen.nn.models import select_device

    torch.manual_seed(settings.seed)
    device = select_device(settings.device)
    warnings: list[str] = []
    models = load_models(settings, device, warnings)
    plans = [plan_layers(model, settings, warnings) for model in models]

    from reportgen.report.output import StagedReport

    jobs = settings.jobs or os.cpu_count() or 1
    single_file = settings.single_file
    output: Any = (
        DiscardedOutput()
        if analysis_only
        else StagedReport(Path(settings.output), single_file=single_file)
    )
    analysis: dict[str, Any] | None = None
    with output as staged:
        encoder = ImageEncoder(jobs, staged)
        try:
            inputs, usable, skipped = _prepare_inputs(files, skipped_found, staged, encoder)
            if settings.strict and skipped:
                raise ReportgenError(f"input {skipped[0].source!r}: {skipped[0].reason}")
            if not usable:
                raise ReportgenError(
                    f"none of the {len(files) + len(skipped_found)} inputs could be used; "
                    f"first problem: {skipped[0].source!r}: {skipped[0].reason}"
                )
            for item in skipped:
                warnings.append(f"skipped input {item.source!r}: {item.reason}")
            table = imaging.colormap_table(settings.colormap)
            colorbar = staged.write(
                f"{paths.ASSETS}/colormap-{settings.colormap}.png", imaging.colorbar_png(table)
            )
            input_cache = InputCacheContext(cache_dir, {i.id: i.sha256 for i in inputs})
            model_records = [
                run_model(
                    model, plan, usable, settings, staged, encoder, table, progress, input_cache
                )
                for model, plan in zip(models, plans)
            ]
            encoder.drain()
        finally:
            encoder.close()
        comparisons = compare_loaded_models(models, plans, model_records)
        data = ReportData(
            title="reportgen report",
            created=creation_time(),
            generator_version=__version__,
            environment=environment(device),
            settings=report_settings(settings),
            inputs=inputs,
            skipped=[SkippedRecord(s.source, s.reason) for s in skipped],
            models=model_records,
            warnings=warnings,
            colorbar=colorbar,
            comparisons=comparisons,
        )
        from reportgen.report.manifest import build_manifest

        if analysis_only:
            pages, file_list = 0, list[dict[str, Any]]()
            analysis = build_manifest(data, [])
        elif single_file:
            pages, file_list = write_single_file_report(
                data, staged, build_manifest, settings, warnings
            )
        else:
            pages = write_site(data, staged, jobs)
            file_list = staged.file_list()
            manifest = build_manifest(data, file_list)
            staged.commit(manifest)
            if run_key:
                run_cache.save(run_key, staged.target, manifest)
    return RunSummary(
        report=str(Path(settings.output)),
        inputs=[i.source for i in inputs],
        skipped=[{"source": s.source, "reason": s.reason} for s in skipped],
        models=[m.id for m in model_records],
        layers={m.id: [layer.name for layer in m.layers] for m in model_records},
        warnings=warnings,
        pages=pages,
        files=1 if single_file else len(file_list) + 1,
        seconds=round(time.perf_counter() - started, 3),
        extra={"analysis": analysis} if analysis is not None else {},
    )


class DiscardedOutput:
    """Stands in for the report folder when only the analysis is wanted (``analyze``):
    paths are handed out as usual, nothing is encoded or written."""

    discards = True

    def __enter__(self) -> DiscardedOutput:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def write(self, relpath: str, data: bytes | str) -> str:
        return relpath

    def file_list(self) -> list[dict[str, Any]]:
        return []


def _prepare_inputs(
    files: list[InputFile], skipped_found: list[SkippedInput], staged: Any, encoder: ImageEncoder
) -> tuple[list[InputRecord], list[InputFile], list[SkippedInput]]:
    """Read every input once: its facts and thumbnail, or why it is skipped."""
    records: list[InputRecord] = []
    usable: list[InputFile] = []
    skipped = list(skipped_found)
    for file in files:
        try:
            loaded = load_image(file)
        except ReportgenError as exc:
            log.warning("skipping %s: %s", file.source, exc)
            skipped.append(SkippedInput(file.source, str(exc)))
            continue
        thumbnail = paths.input_thumbnail(file.id)
        encoder.write(thumbnail, imaging.thumbnail_jpeg, loaded.image)
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
