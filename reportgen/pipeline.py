"""``reportgen run`` as a function: inputs and settings in, a report folder out.

Stages run one way: inputs -> models -> capture -> analysis -> imaging -> report.
Images are encoded on worker threads while the next batch runs through the network.
"""

from __future__ import annotations

import datetime as _dt
import logging
import math
import os
import platform
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from reportgen import __version__, imaging
from reportgen.errors import ReportgenError, UsageError
from reportgen.examples import TopExamples
from reportgen.inputs import (
    IMAGE_SUFFIXES,
    InputFile,
    LoadedImage,
    SkippedInput,
    discover_inputs,
    load_image,
)
from reportgen.report import paths
from reportgen.report.data import (
    ChannelRecord,
    GradCamRecord,
    InputRecord,
    LayerRecord,
    ModelRecord,
    Prediction,
    ReportData,
    SkippedRecord,
)
from reportgen.settings import SCALES, STRATEGIES, RunSettings

log = logging.getLogger("reportgen")
Progress = Callable[[int], None]


@dataclass
class RunSummary:
    report: str
    inputs: list[str]
    skipped: list[dict[str, str]]
    models: list[str]
    layers: dict[str, list[str]]
    warnings: list[str]
    pages: int
    files: int
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


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
        from reportgen.featurevis import check_settings

        check_settings(settings.fv_steps, settings.fv_size, settings.fv_channels)


def _check_output_apart(settings: RunSettings) -> None:
    """The report folder may neither hold an input nor lie inside an input folder.

    A run replaces the whole output folder (inputs inside it would be lost), and a
    report inside an input folder would be read as inputs by the next run.
    """
    from reportgen.fetch import is_url

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


def _finite(value: float) -> float | None:
    return None if not np.isfinite(value) else float(value)


class _Encoder:
    """Runs image encoding and file writing on worker threads, with bounded backlog."""

    def __init__(self, jobs: int, staged: Any = None) -> None:
        self.staged = staged
        self.pool = ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="encode")
        self.pending: deque[Future[Any]] = deque()
        self.limit = 64 * max(1, jobs)

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        self.pending.append(self.pool.submit(fn, *args))
        while len(self.pending) > self.limit:
            self.pending.popleft().result()

    def write(self, path: str, encode: Callable[..., bytes], *args: Any) -> None:
        """Encode on a worker thread, then write the bytes to ``path`` in the report."""

        if getattr(self.staged, "discards", False):
            return  # analysis only: no pictures

        def task() -> None:
            self.staged.write(path, encode(*args))

        self.submit(task)

    def drain(self) -> None:
        while self.pending:
            self.pending.popleft().result()

    def close(self) -> None:
        try:
            self.drain()
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)


def _batches(items: list[InputFile], size: int) -> Iterator[list[InputFile]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def build_report(settings: RunSettings, progress: Progress | None = None) -> RunSummary:
    """Run the whole pipeline and put a complete report at ``settings.output``."""
    started = time.perf_counter()
    validate_settings(settings)
    files, skipped_found = discover_inputs(settings.inputs)
    if not files and not skipped_found:
        raise ReportgenError(
            f"no image files found in {', '.join(repr(i) for i in settings.inputs)} "
            f"(looked for {', '.join(sorted(IMAGE_SUFFIXES))})"
        )
    from reportgen.cache import RunCache, cache_root

    cache_dir = cache_root(settings.extra.get("cache_dir"), bool(settings.extra.get("no_cache")))
    whole_site = not (settings.extra.get("single_file") or settings.extra.get("analysis_only"))
    run_cache = RunCache(cache_dir if whole_site else None)
    run_key = _run_key(settings, files, skipped_found) if run_cache.enabled else ""
    if run_key:
        replayed = _replay_run(run_cache, run_key, settings, started, progress)
        if replayed is not None:
            return replayed

    import torch

    from reportgen.models import select_device

    torch.manual_seed(settings.seed)
    device = select_device(settings.device)
    warnings: list[str] = []
    models = _load_models(settings, device, warnings)
    plans = [_plan_layers(model, settings, warnings) for model in models]

    from reportgen.report.output import StagedReport

    jobs = settings.extra.get("jobs") or os.cpu_count() or 1
    single_file = bool(settings.extra.get("single_file"))
    analysis_only = bool(settings.extra.get("analysis_only"))
    output: Any = (
        DiscardedOutput()
        if analysis_only
        else StagedReport(Path(settings.output), single_file=single_file)
    )
    analysis: dict[str, Any] | None = None
    with output as staged:
        encoder = _Encoder(jobs, staged)
        try:
            inputs, usable, skipped = _prepare_inputs(files, skipped_found, staged, encoder)
            if settings.extra.get("strict") and skipped:
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
            input_cache = _CacheContext(cache_dir, {i.id: i.sha256 for i in inputs})
            model_records = [
                _run_model(
                    model, plan, usable, settings, staged, encoder, table, progress, input_cache
                )
                for model, plan in zip(models, plans)
            ]
            encoder.drain()
        finally:
            encoder.close()
        comparisons = _compare_models(models, plans, model_records)
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
            pages, file_list = _write_single_file(data, staged, build_manifest, settings, warnings)
        else:
            pages = _write_site(data, staged, jobs)
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


def _run_key(settings: RunSettings, files: list[InputFile], skipped: list[SkippedInput]) -> str:
    """Everything that shapes a report, hashed without torch: reportgen's code, every
    setting but -o, each input's id, source and content, the weights files."""
    import hashlib

    from reportgen.cache import code_fingerprint, digest, weights_fingerprint

    contents = []
    for file in files:
        try:
            content = hashlib.sha256(file.path.read_bytes()).hexdigest()
        except OSError as exc:
            content = f"unreadable: {exc}"
        contents.append([file.id, file.source, content])
    specs = {settings.weights, *(split_model_spec(m, settings.weights)[1] for m in settings.models)}
    extra = {k: v for k, v in settings.extra.items() if k not in ("jobs", "cache_dir", "no_cache")}
    return digest(
        "run",
        code_fingerprint(),
        report_settings(settings),
        extra,
        contents,
        [[s.source, s.reason] for s in skipped],
        {spec: weights_fingerprint(spec, settings.weights_dir) for spec in sorted(specs)},
        os.environ.get("SOURCE_DATE_EPOCH"),
        os.environ.get("REPORTGEN_OFFLINE"),
        settings.device,
    )


def _replay_run(
    run_cache: Any, key: str, settings: RunSettings, started: float, progress: Progress | None
) -> RunSummary | None:
    """A report kept in the cache under ``key``, put in place; None when there is none."""
    from reportgen.report.output import StagedReport

    target = Path(settings.output)
    with StagedReport(target) as staged:
        manifest = run_cache.replay(key, staged.root)
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


def split_model_spec(spec: str, default_weights: str) -> tuple[str, str]:
    """``-m NAME[=WEIGHTS]``: a model and, optionally, its own weights."""
    name, sep, weights = spec.partition("=")
    return name.strip(), (weights.strip() if sep and weights.strip() else default_weights)


def _load_models(settings: RunSettings, device: Any, warnings: list[str]) -> list[Any]:
    from reportgen.models import is_custom, load_custom_model, load_model, model_id

    if settings.model_labels and len(settings.model_labels) != len(settings.models):
        raise UsageError(
            f"--label was given {len(settings.model_labels)} times for "
            f"{len(settings.models)} models; give one label per -m, in the same order"
        )
    taken: set[str] = set()
    models = []
    for position, spec in enumerate(settings.models):
        name, weights = split_model_spec(spec, settings.weights)
        label = settings.model_labels[position] if settings.model_labels else ""
        default_label = name if weights == settings.weights else f"{name} ({Path(weights).name})"
        ident = model_id(label or default_label, taken)
        taken.add(ident)
        if is_custom(name):
            loaded = load_custom_model(
                name,
                weights,
                seed=settings.seed,
                device=device,
                model_id_=ident,
                input_size=settings.input_size,
                mean=settings.mean,
                std=settings.std,
                labels_file=settings.labels_file,
            )
        else:
            loaded = load_model(
                name,
                weights,
                weights_dir=settings.weights_dir,
                offline=settings.offline,
                seed=settings.seed,
                device=device,
                model_id_=ident,
            )
            if settings.labels_file:
                from reportgen.models import read_labels

                loaded.categories = read_labels(settings.labels_file)
        loaded.display_label = label or default_label
        warnings.extend(f"{ident}: {note}" for note in loaded.notes if "not available" in note)
        models.append(loaded)
    return models


def _compare_models(
    models: list[Any], plans: list[list[Any]], records: list[ModelRecord]
) -> list[Any]:
    """The first model against each other one, on the layers they share."""
    from reportgen.compare import compare_models

    if len(records) < 2:
        return []
    kernels = [{p.name: p.weight for p in plan if p.weight is not None} for plan in plans]
    return [
        compare_models(records[0], records[i], kernels[0], kernels[i])
        for i in range(1, len(records))
    ]


@dataclass
class _LayerPlan:
    name: str
    type: str
    value: str
    output_shape: tuple[int, ...]
    spatial: bool
    weight: np.ndarray | None  # Conv2d kernels [out, in/groups, kh, kw]


def _plan_layers(model: Any, settings: RunSettings, warnings: list[str]) -> list[_LayerPlan]:
    import torch

    from reportgen.layers import resolve_layers, trace_layers

    size = int(model.preprocessing.crop_size[0])
    infos = trace_layers(model.module, size, model.device)
    chosen = resolve_layers(infos, settings.layers, model.name)
    by_name = {info.name: info for info in infos}
    modules = dict(model.module.named_modules())
    plans = []
    for name in chosen:
        info = by_name[name]
        shape = info.output_shape or ()
        if len(shape) not in (1, 3):
            warnings.append(
                f"{model.id}: layer {name} ({info.type}) has output shape {shape}; "
                "only [C, H, W] and [C] outputs are shown, so it is left out"
            )
            continue
        module = modules[name]
        weight = None
        if isinstance(module, torch.nn.Conv2d):
            weight = module.weight.detach().float().cpu().numpy()
        plans.append(_LayerPlan(name, info.type, info.value, shape, len(shape) == 3, weight))
        _check_channel_options(model.id, name, int(shape[0]), settings, warnings)
    if not plans:
        raise ReportgenError(f"no layer of {model.id!r} can be shown; choose others with -l")
    return plans


def _check_channel_options(
    model_id: str, layer: str, channels: int, settings: RunSettings, warnings: list[str]
) -> None:
    """Manual channels must exist in the layer; a --top-k above its count is clamped, said so."""
    if settings.strategy == "manual":
        bad = [c for c in settings.channels if not 0 <= c < channels]
        if bad:
            raise UsageError(
                f"--channels {bad[0]} is out of range for layer {layer} of {model_id!r}: "
                f"it has {channels} channels (0-{channels - 1})"
            )
    elif settings.top_k > channels:
        warnings.append(
            f"{model_id}: layer {layer} has {channels} channels; --top-k {settings.top_k} "
            f"clamped to {channels}"
        )


def _prepare_inputs(
    files: list[InputFile], skipped_found: list[SkippedInput], staged: Any, encoder: _Encoder
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


def _filter_images(
    plan: _LayerPlan, model_id: str, staged: Any, encoder: _Encoder
) -> tuple[list[dict[str, str]], str | None]:
    """Filter pictures of every channel of a Conv2d layer, and a note saying what they are."""
    if plan.weight is None:
        return [{} for _ in range(plan.output_shape[0])], None
    weight = plan.weight
    first_layer = weight.shape[1] == 3
    result = []
    for channel in range(weight.shape[0]):
        kernel = weight[channel]
        parts: dict[str, str] = {}
        if first_layer:
            parts["rgb"] = paths.filter_image(model_id, plan.name, channel, "rgb")
            encoder.write(parts["rgb"], imaging.filter_rgb_png, kernel)
            for colour in "rgb":
                parts[colour] = paths.filter_image(model_id, plan.name, channel, colour)

            def write_channels(k: np.ndarray, names: dict[str, str]) -> None:
                for colour, data in imaging.filter_channel_pngs(k).items():
                    staged.write(names[colour], data)

            encoder.submit(write_channels, kernel, dict(parts))
        else:
            parts["mean"] = paths.filter_image(model_id, plan.name, channel, "mean")
            encoder.write(parts["mean"], imaging.filter_mean_png, kernel)
        result.append(parts)
    kh, kw = weight.shape[2:]
    if first_layer:
        note = (
            f"{kh}x{kw} filters over the RGB input: shown as colour, and as their R, G and B "
            "parts apart, each filter scaled over its own range (true pixels, no smoothing)"
        )
    else:
        note = (
            f"{kh}x{kw} filters over {weight.shape[1]} input channels: shown as the mean over "
            "those channels, in grey, each scaled over its own range"
        )
    return result, note


def _run_model(
    model: Any,
    plans: list[_LayerPlan],
    usable: list[InputFile],
    settings: RunSettings,
    staged: Any,
    encoder: _Encoder,
    table: np.ndarray,
    progress: Progress | None,
    cache: _CacheContext | None = None,
) -> ModelRecord:
    import torch

    from reportgen.analysis import channel_stats, map_to_view, select_channels, value_range
    from reportgen.capture import ActivationRecorder

    record = ModelRecord(
        id=model.id,
        name=model.name,
        weights=model.weights.label,
        weights_detail=model.weights.describe(),
        preprocessing=model.preprocessing.describe(),
        page=paths.model_page(model.id),
        compare_page=paths.compare_page(model.id),
        notes=list(model.notes),
        label=model.display_label,
    )
    layers: list[LayerRecord] = []
    fields = _receptive_fields(model, plans)
    trackers = {plan.name: TopExamples(plan.output_shape[0], settings.examples) for plan in plans}
    gradcam_layer = _gradcam_layer(model, settings)
    target_class = _target_class(model, settings.target_class)
    for plan in plans:
        filters, note = _filter_images(plan, model.id, staged, encoder)
        layer = LayerRecord(
            name=plan.name,
            type=plan.type,
            value=plan.value,
            output_shape=plan.output_shape,
            page=paths.layer_page(model.id, plan.name),
            spatial=plan.spatial,
            filter_note=note,
            channels=[
                ChannelRecord(c, paths.channel_page(model.id, plan.name, c), filter=filters[c])
                for c in range(plan.output_shape[0])
            ],
        )
        layer.receptive_field = fields[plan.name].size[0] if plan.name in fields else None
        layers.append(layer)
    record.layers = layers

    # Incremental re-runs: inputs whose results are cached skip the network and the
    # encoders (see reportgen.cache); Grad-CAM needs the gradients, so it turns this off.
    cached_run = cache if cache is not None else _CacheContext(None)
    model_key = cached_run.model_key(model, settings)
    crop = tuple(int(v) for v in model.preprocessing.crop_size)
    view_size = (crop[-1], crop[0])  # (width, height)
    with ActivationRecorder(model.module, [p.name for p in plans]) as recorder:
        for batch_files in _batches(usable, settings.batch_size):
            hits = {f.id: cached_run.lookup(model_key, f.id, plans) for f in batch_files}
            todo = [f for f in batch_files if hits[f.id] is None]
            images: list[LoadedImage] = [load_image(f) for f in todo]
            views = [model.preprocessing.view(img.image) for img in images]
            view_arrays = [np.asarray(v, dtype=np.uint8) for v in views]
            position = {f.id: b for b, f in enumerate(todo)}
            per_layer: dict[str, tuple[list[Any], np.ndarray]] = {}
            builders: dict[str, Any] = {}
            fresh: dict[str, list[Prediction]] = {}
            if todo:
                batch = torch.stack([model.preprocessing.tensor(v) for v in views]).to(model.device)
                top_cams = None
                if gradcam_layer is not None:
                    # One pass for both: Grad-CAM's forward pass also feeds the recorder.
                    from reportgen.gradcam import grad_cam_and_logits

                    top_cams, logits = grad_cam_and_logits(
                        model.module, gradcam_layer, batch, [None] * len(todo)
                    )
                    outputs = recorder.collect()
                else:
                    logits, outputs = recorder.run(batch)
                probabilities = torch.softmax(logits, dim=1)
                top = torch.topk(probabilities, k=min(5, probabilities.shape[1]), dim=1)
                for b, file in enumerate(todo):
                    fresh[file.id] = [
                        Prediction(int(i), model.label(int(i)), round(float(p), 6))
                        for p, i in zip(top.values[b], top.indices[b])
                    ]
                    builders[file.id] = cached_run.builder(
                        model_key,
                        file.id,
                        "input",
                        {"predictions": [[p.index, p.probability] for p in fresh[file.id]]},
                    )
                if gradcam_layer is not None:
                    _gradcam_batch(
                        model,
                        gradcam_layer,
                        target_class,
                        batch,
                        todo,
                        view_arrays,
                        record,
                        encoder,
                        table,
                        settings.alpha,
                        builders,
                        top_cams,
                    )
                for plan in plans:
                    output = outputs.pop(plan.name)
                    per_layer[plan.name] = (channel_stats(output), output.numpy())
            for file in batch_files:
                view_path = paths.model_view(model.id, file.id)
                record.views[file.id] = view_path
                hit = hits[file.id]
                if hit is not None:
                    record.predictions[file.id] = [
                        Prediction(int(i), model.label(int(i)), float(p))
                        for i, p in hit.header["predictions"]
                    ]
                    _write_cached(encoder, staged, view_path, hit.blobs["view"])
                    _replay_gradcam(model, hit, file.id, record, encoder, staged)
                    continue
                record.predictions[file.id] = fresh[file.id]
                # Grad-CAM records in input order, as without the cache.
                cams = record.gradcam.pop(file.id, None)
                if cams is not None:
                    record.gradcam[file.id] = cams
                _encode_and_write(
                    encoder,
                    staged,
                    builders[file.id],
                    view_path,
                    "view",
                    imaging.view_jpeg,
                    views[position[file.id]],
                )
            for plan, layer in zip(plans, layers):
                for file in batch_files:
                    hit = hits[file.id]
                    if hit is not None:
                        part = hit.header["layers"][plan.name]
                        stats_b, values_b, view_b = part["stats"], None, None
                        layer_builder = None
                    else:
                        b = position[file.id]
                        stats_b = per_layer[plan.name][0][b]
                        values_b, view_b = per_layer[plan.name][1][b], view_arrays[b]
                        layer_builder = cached_run.builder(
                            model_key, file.id, _layer_part(plan), {}
                        )
                    trackers[plan.name].add(
                        file.id, stats_b.max, stats_b.argmax_y, stats_b.argmax_x
                    )
                    _record_layer_input(
                        layer,
                        plan,
                        model.id,
                        file.id,
                        stats_b,
                        values_b,
                        view_b,
                        settings,
                        staged,
                        encoder,
                        table,
                        select_channels,
                        map_to_view,
                        value_range,
                        view_size=view_size,
                        cached=hit.header["layers"][plan.name] if hit is not None else None,
                        builder=layer_builder,
                    )
            for builder in builders.values():
                if builder is not None:
                    builder.seal()
            if progress:
                progress(len(batch_files))
    if settings.feature_vis:
        from reportgen.featurevis import feature_vis_for_model

        store = cache.store if cache is not None and cache.enabled else None
        feature_vis_for_model(model, plans, layers, settings, encoder.write, store)
    _write_examples(model, plans, layers, trackers, fields, usable, encoder)
    return record


def _receptive_fields(model: Any, plans: list[_LayerPlan]) -> dict[str, Any]:
    from reportgen.receptive import receptive_fields

    spatial = [p.name for p in plans if p.spatial]
    if not spatial:
        return {}
    size = int(model.preprocessing.crop_size[0])
    return receptive_fields(model.module, spatial, size, model.device)


def _gradcam_layer(model: Any, settings: RunSettings) -> str | None:
    from reportgen.gradcam import last_conv_layer

    if not settings.gradcam:
        return None
    if settings.gradcam_layer:
        if settings.gradcam_layer not in dict(model.module.named_modules()):
            raise ReportgenError(
                f"--gradcam-layer {settings.gradcam_layer!r} is not a layer of {model.id!r} "
                f"(see 'reportgen layers {model.name}')"
            )
        return settings.gradcam_layer
    return last_conv_layer(model.module)


def _target_class(model: Any, target: str | None) -> int | None:
    """--target-class as an index: a number, or a category name of the model."""
    if target is None or target == "":
        return None
    if target.strip().lstrip("-").isdigit():
        return int(target)
    names = [c.lower() for c in (model.categories or [])]
    if target.lower() in names:
        return names.index(target.lower())
    import difflib

    close = difflib.get_close_matches(target, model.categories or [], n=3)
    hint = f"; closest: {', '.join(close)}" if close else ""
    raise UsageError(f"--target-class {target!r} is not a class of {model.id!r}{hint}")


def _gradcam_batch(
    model: Any,
    layer: str,
    target_class: int | None,
    batch: Any,
    batch_files: list[InputFile],
    views: list[np.ndarray],
    record: ModelRecord,
    encoder: _Encoder,
    table: np.ndarray,
    alpha: float,
    builders: dict[str, Any] | None = None,
    top_cams: list[Any] | None = None,
) -> None:
    """Grad-CAM for each input's top class and, when asked, the target class.

    ``builders``: per input id, where the cache collects the maps and pictures.
    ``top_cams``: the top-class Grad-CAMs, when the caller's pass already made them."""
    from reportgen.gradcam import grad_cam

    runs: list[tuple[str, list[int | None]]] = [("top prediction", [None] * len(batch_files))]
    if target_class is not None:
        runs.append(("target class", [target_class] * len(batch_files)))
    for kind, classes in runs:
        cams = (
            top_cams
            if kind == "top prediction" and top_cams is not None
            else grad_cam(model.module, layer, batch, classes)
        )
        for b, cam in enumerate(cams):
            file = batch_files[b]
            suffix = "" if kind == "top prediction" else "-target"
            image = paths.gradcam_image(model.id, file.id + suffix)
            builder = (builders or {}).get(file.id)
            _encode_and_write(
                encoder,
                encoder.staged,
                builder,
                image,
                f"gradcam:{kind}",
                imaging.overlay_jpeg,
                views[b],
                cam.map,
                0.0,
                1.0,
                table,
                alpha,
            )
            cam_record = GradCamRecord(
                class_index=cam.class_index,
                label=model.label(cam.class_index),
                layer=layer,
                map=[[round(float(v), 6) for v in row] for row in cam.map],
                image=image,
                kind=kind,
            )
            record.gradcam.setdefault(file.id, []).append(cam_record)
            if builder is not None:
                builder.entry.header.setdefault("gradcam", []).append(
                    [kind, suffix, cam_record.class_index, layer, cam_record.map]
                )


def _replay_gradcam(
    model: Any, hit: Any, input_id: str, record: ModelRecord, encoder: _Encoder, staged: Any
) -> None:
    """Grad-CAM records and pictures of an input, from the cache."""
    for kind, suffix, class_index, layer, cam_map in hit.header.get("gradcam", []):
        image = paths.gradcam_image(model.id, input_id + suffix)
        _write_cached(encoder, staged, image, hit.blobs[f"gradcam:{kind}"])
        record.gradcam.setdefault(input_id, []).append(
            GradCamRecord(
                class_index=class_index,
                label=model.label(class_index),
                layer=layer,
                map=cam_map,
                image=image,
                kind=kind,
            )
        )


def _write_examples(
    model: Any,
    plans: list[_LayerPlan],
    layers: list[LayerRecord],
    trackers: dict[str, TopExamples],
    fields: dict[str, Any],
    usable: list[InputFile],
    encoder: _Encoder,
) -> None:
    """Each channel's top inputs as one strip of crops around the argmax, sized by
    the receptive field. Inputs are read again, one at a time: memory stays bounded."""
    channel_tiles: dict[str, list[Any]] = {}
    crop = tuple(int(v) for v in model.preprocessing.crop_size)
    view_size = (crop[-1], crop[0])  # (width, height)
    by_input: dict[str, list[tuple[list[Any], int, list[int]]]] = {}
    for plan, layer in zip(plans, layers):
        tracker = trackers[plan.name]
        field_ = fields.get(plan.name)
        for channel in layer.channels:
            examples = tracker.top(channel.index)
            channel.examples = []
            tiles: list[Any] = [None] * len(examples)
            for k, example in enumerate(examples):
                box = (
                    field_.box(example.y, example.x, view_size)
                    if field_ is not None and plan.spatial
                    else [0, 0, view_size[0], view_size[1]]
                )
                channel.examples.append(
                    {"input": example.input_id, "value": _finite(example.value), "box": box}
                )
                by_input.setdefault(example.input_id, []).append((tiles, k, box))
            if examples:
                channel.examples_image = paths.examples_image(model.id, plan.name, channel.index)
                channel_tiles[channel.examples_image] = tiles
    # One input at a time: crops are small tiles, so memory does not grow with inputs.
    for file in usable:
        wanted = by_input.get(file.id)
        if not wanted:
            continue
        view = np.asarray(model.preprocessing.view(load_image(file).image), dtype=np.uint8)
        for tiles, k, box in wanted:
            tiles[k] = imaging.crop_tile(view, box)
    for strip, tiles in channel_tiles.items():
        encoder.write(strip, imaging.tiles_strip_jpeg, tiles)


def _record_layer_input(
    layer: LayerRecord,
    plan: _LayerPlan,
    model_id: str,
    input_id: str,
    stats: Any,
    values: np.ndarray | None,
    view: np.ndarray | None,
    settings: RunSettings,
    staged: Any,
    encoder: _Encoder,
    table: np.ndarray,
    select_channels: Any,
    map_to_view: Any,
    value_range: Any,
    view_size: tuple[int, int] | None = None,
    cached: dict[str, Any] | None = None,
    builder: Any = None,
) -> None:
    """Statistics, selection and pictures of one layer for one input.

    ``cached``: the layer's results for this input from the cache (statistics, range and
    encoded pictures): nothing is computed or encoded, the bytes are written. ``builder``:
    collects what is computed here for the cache.
    """
    selected = select_channels(
        stats,
        settings.strategy,
        settings.top_k,
        settings.channels,
        settings.interesting_mean,
        settings.interesting_max,
    )
    layer.selected[input_id] = selected
    if view_size is None:
        assert view is not None
        view_size = (view.shape[1], view.shape[0])
    # Plain lists: one conversion per array instead of a numpy scalar per value.
    means, maxs, mins = stats.mean.tolist(), stats.max.tolist(), stats.min.tolist()
    stds, sparsities = stats.std.tolist(), stats.sparsity.tolist()
    ys, xs = stats.argmax_y.tolist(), stats.argmax_x.tolist()
    for c, channel in enumerate(layer.channels):
        y, x = ys[c], xs[c]
        channel.stats[input_id] = {
            "mean": _finite_number(means[c]),
            "max": _finite_number(maxs[c]),
            "min": _finite_number(mins[c]),
            "std": _finite_number(stds[c]),
            "sparsity": _finite_number(sparsities[c]),
            "argmax": {
                "map_yx": [y, x],
                "view_xy": list(map_to_view(y, x, stats.map_size, view_size)),
            },
        }
    if builder is not None:
        builder.entry.arrays.update({name: getattr(stats, name) for name in _STAT_ARRAYS})
        builder.entry.header["map_size"] = list(stats.map_size)
    if not plan.spatial:
        chart = paths.ranked_chart(model_id, plan.name, input_id)
        layer.charts[input_id] = chart
        if cached is not None:
            _write_cached(encoder, staged, chart, cached["blobs"]["chart"])
        else:
            assert values is not None
            names = [f"unit {i}" for i in range(values.shape[0])]
            title = f"{plan.name}: top values"
            _encode_and_write(
                encoder,
                staged,
                builder,
                chart,
                "chart",
                imaging.ranked_chart_png,
                values.astype(np.float64),
                names,
                title,
            )
        if builder is not None:
            builder.seal()
        return
    if cached is not None:
        layer_low, layer_high = cached["range"]
    else:
        assert values is not None
        layer_low, layer_high = value_range(values)
    layer.ranges[input_id] = (layer_low, layer_high)
    if builder is not None:
        builder.entry.header["range"] = [layer_low, layer_high]
    by_layer = settings.scale == "layer"
    chosen = sorted(set(selected))
    channels = len(layer.channels)
    map_paths = [paths.map_image(model_id, plan.name, input_id, c) for c in range(channels)]
    for c, channel in enumerate(layer.channels):
        channel.maps[input_id] = map_paths[c]
    overlays = {c: paths.overlay_image(model_id, plan.name, input_id, c) for c in chosen}
    for c, overlay in overlays.items():
        layer.channels[c].overlays[input_id] = overlay

    if cached is not None:
        blobs = cached["blobs"]

        def write_cached() -> None:
            for c in range(channels):
                staged.write(map_paths[c], blobs[f"map{c}"])
            for c, overlay in overlays.items():
                staged.write(overlay, blobs[f"overlay{c}"])

        encoder.submit(write_cached)
        return

    assert values is not None and view is not None
    if by_layer:
        lows = np.full(channels, layer_low, dtype=np.float64)
        highs = np.full(channels, layer_high, dtype=np.float64)
    else:
        lows, highs = np.asarray(stats.min, np.float64), np.asarray(stats.max, np.float64)

    def encode_maps(vals: np.ndarray) -> None:
        # The whole layer at once: levels in one numpy pass, PNGs written with zlib.
        for c, data in enumerate(imaging.map_pngs(vals, lows, highs, table)):
            staged.write(map_paths[c], data)
            if builder is not None:
                builder.add(f"map{c}", data)

    if builder is not None:
        builder.expect(channels)
    # One task per layer and input keeps the queue short; channels of a layer are cheap.
    encoder.submit(encode_maps, values)
    for c, overlay in overlays.items():
        _encode_and_write(
            encoder,
            staged,
            builder,
            overlay,
            f"overlay{c}",
            imaging.overlay_jpeg,
            view,
            values[c],
            float(lows[c]),
            float(highs[c]),
            table,
            settings.alpha,
        )
    if builder is not None:
        builder.seal()


_STAT_ARRAYS = ("mean", "max", "min", "std", "sparsity", "argmax_y", "argmax_x")


def _finite_number(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _write_cached(encoder: _Encoder, staged: Any, path: str, data: bytes) -> None:
    encoder.submit(staged.write, path, data)


def _encode_and_write(
    encoder: _Encoder,
    staged: Any,
    builder: Any,
    path: str,
    name: str,
    encode: Callable[..., bytes],
    *args: Any,
) -> None:
    """Encode on a worker thread, write to the report and, with a builder, keep the bytes
    for the cache."""
    if builder is None:
        encoder.write(path, encode, *args)
        return
    builder.expect()

    def task() -> None:
        data = encode(*args)
        staged.write(path, data)
        builder.add(name, data)

    encoder.submit(task)


class _CacheContext:
    """The per-input cache as the pipeline uses it (``None`` root: caching off)."""

    def __init__(self, root: Path | None, input_sha: dict[str, str] | None = None) -> None:
        from reportgen.cache import InputCache

        self.store = InputCache(root)
        self.input_sha = input_sha or {}

    @property
    def enabled(self) -> bool:
        return self.store.enabled

    def model_key(self, model: Any, settings: RunSettings) -> str:
        if not self.enabled:
            return ""
        import torch

        from reportgen.cache import code_fingerprint, digest

        weights = model.weights
        path = getattr(weights, "path", None)
        identity = None
        if path is not None:
            info = Path(path).stat()
            identity = [str(path), info.st_size, info.st_mtime_ns]
        recorded = {
            k: v for k, v in report_settings(settings).items() if k not in _NOT_IN_INPUT_KEY
        }
        return digest(
            "input-results",
            code_fingerprint(),
            torch.__version__,
            model.name,
            weights.describe(),
            identity,
            model.preprocessing.describe(),
            str(model.device),
            recorded,
        )

    def _key(self, model_key: str, input_id: str, part: str) -> str:
        from reportgen.cache import digest

        return digest(model_key, part, self.input_sha.get(input_id, input_id))

    def lookup(self, model_key: str, input_id: str, plans: list[_LayerPlan]) -> Any:
        """The input's cached results for every planned layer, or None (then all are
        computed again: the network runs for the whole input anyway)."""
        if not self.enabled or input_id not in self.input_sha:
            return None
        from reportgen.analysis import ChannelStats
        from reportgen.cache import Entry

        top = self.store.load(self._key(model_key, input_id, "input"))
        if top is None or "view" not in top.blobs:
            return None
        layers = {}
        for plan in plans:
            entry = self.store.load(self._key(model_key, input_id, _layer_part(plan)))
            if entry is None or any(name not in entry.arrays for name in _STAT_ARRAYS):
                return None
            stats = ChannelStats(
                **{name: entry.arrays[name] for name in _STAT_ARRAYS},
                map_size=tuple(entry.header["map_size"]),
            )
            layers[plan.name] = {
                "stats": stats,
                "range": tuple(entry.header.get("range", (0.0, 0.0))),
                "blobs": entry.blobs,
            }
        header = {
            "predictions": top.header["predictions"],
            "gradcam": top.header.get("gradcam", []),
            "layers": layers,
        }
        return Entry(header, {}, top.blobs)

    def builder(self, model_key: str, input_id: str, part: str, header: dict[str, Any]) -> Any:
        if not self.enabled or input_id not in self.input_sha:
            return None
        from reportgen.cache import Entry, EntryBuilder

        return EntryBuilder(self.store, self._key(model_key, input_id, part), Entry(dict(header)))


def _layer_part(plan: _LayerPlan) -> str:
    return f"layer:{plan.name}:{list(plan.output_shape)}"


# Options that change no per-input result (or are keyed otherwise: the model, weights).
_NOT_IN_INPUT_KEY = {
    "inputs",
    "output",
    "models",
    "model_labels",
    "batch_size",
    "weights",
    "weights_dir",
    # Feature visualisation changes no per-input result; its own entries carry these.
    "feature_vis",
    "fv_steps",
    "fv_size",
    "fv_channels",
    "fv_negative",
}


def report_settings(settings: RunSettings) -> dict[str, Any]:
    """The settings a report records: every effective option but -o, so that the same
    run written to two places (or a report moved) gives byte-identical files."""
    recorded = settings.as_manifest()
    recorded.pop("output", None)
    return recorded


def _write_single_file(
    data: ReportData, staged: Any, build_manifest: Any, settings: RunSettings, warnings: list[str]
) -> tuple[int, list[dict[str, Any]]]:
    from reportgen.report.render import make_environment
    from reportgen.report.singlefile import write_single_file

    pages, notes = write_single_file(
        data, staged, build_manifest, make_environment(), settings.extra.get("max_single_file_mb")
    )
    warnings.extend(notes)
    return pages, []


def _write_site(data: ReportData, staged: Any, jobs: int = 1) -> int:
    from reportgen.report.pages import render_pages
    from reportgen.report.render import make_environment, templates_dir

    for asset in ("style.css", "app.js"):
        staged.write(f"{paths.ASSETS}/{asset}", (templates_dir() / asset).read_bytes())
    csp = (
        "default-src 'none'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "base-uri 'none'; form-action 'none'"
    )
    workers = _render_workers(data, jobs)
    if workers <= 1:
        return render_pages(data, make_environment(), staged.write, csp)
    return _render_in_processes(data, staged, csp, workers)


# Pages are pure Python (Jinja) work: below this many, forking costs more than it saves.
_PARALLEL_PAGES = 200


def _render_workers(data: ReportData, jobs: int) -> int:
    import multiprocessing

    if jobs <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        return 1
    channels = sum(len(layer.channels) for model in data.models for layer in model.layers)
    return min(jobs, 8) if channels >= _PARALLEL_PAGES else 1


_SHARED_RENDER: tuple[Any, ...] | None = None


def _render_share(k: int, n: int) -> list[tuple[str, str]]:
    """In a forked worker: render every n-th page from the k-th; pages come back as text."""
    from reportgen.report.pages import render_pages
    from reportgen.report.render import make_environment

    assert _SHARED_RENDER is not None
    data, csp = _SHARED_RENDER
    out: list[tuple[str, str]] = []
    render_pages(
        data, make_environment(), lambda path, text: out.append((path, text)), csp, share=(k, n)
    )
    return out


def _render_in_processes(data: ReportData, staged: Any, csp: str, workers: int) -> int:
    """Pages rendered by ``workers`` processes (forked: they share the report data without
    copying it); this process renders its share and writes every page."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from reportgen.report.pages import render_pages
    from reportgen.report.render import make_environment

    global _SHARED_RENDER
    _SHARED_RENDER = (data, csp)
    try:
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=workers - 1, mp_context=context) as pool:
            futures = [pool.submit(_render_share, k, workers) for k in range(1, workers)]
            count = render_pages(data, make_environment(), staged.write, csp, share=(0, workers))
            for future in futures:
                for path, text in future.result():
                    staged.write(path, text)
                    count += 1
    finally:
        _SHARED_RENDER = None
    return count
