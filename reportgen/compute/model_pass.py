"""One model over all inputs: layer plans, batched forward passes, statistics,
selection, maps, overlays, filters, Grad-CAM and dataset examples, as records."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from reportgen.analysis.examples import TopExamples
from reportgen.compute.cached import STAT_ARRAYS, InputCacheContext, layer_part
from reportgen.compute.encoding import ImageEncoder, encode_and_write, write_cached
from reportgen.errors import ReportgenError, UsageError
from reportgen.imaging import pictures as imaging
from reportgen.imaging.sheets import SheetGrid
from reportgen.inputs.files import (
    InputFile,
    LoadedImage,
    load_image,
)
from reportgen.report import paths
from reportgen.report.data import (
    ChannelRecord,
    GradCamRecord,
    LayerRecord,
    ModelRecord,
    Prediction,
)
from reportgen.settings import RunSettings, maps_in_sheets

Progress = Callable[[int], None]


def finite(value: float) -> float | None:
    return None if not np.isfinite(value) else float(value)


def batches(items: list[InputFile], size: int) -> Iterator[list[InputFile]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass
class LayerPlan:
    name: str
    type: str
    value: str
    output_shape: tuple[int, ...]
    spatial: bool
    weight: np.ndarray | None  # Conv2d kernels [out, in/groups, kh, kw]


def plan_layers(model: Any, settings: RunSettings, warnings: list[str]) -> list[LayerPlan]:
    import torch

    from reportgen.nn.layers import resolve_layers, trace_layers

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
        plans.append(LayerPlan(name, info.type, info.value, shape, len(shape) == 3, weight))
        check_channel_options(model.id, name, int(shape[0]), settings, warnings)
    if not plans:
        raise ReportgenError(f"no layer of {model.id!r} can be shown; choose others with -l")
    return plans


def check_channel_options(
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


def _filter_images(
    plan: LayerPlan, model_id: str, staged: Any, encoder: ImageEncoder
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


def run_model(
    model: Any,
    plans: list[LayerPlan],
    usable: list[InputFile],
    settings: RunSettings,
    staged: Any,
    encoder: ImageEncoder,
    table: np.ndarray,
    progress: Progress | None,
    cache: InputCacheContext | None = None,
) -> ModelRecord:
    import torch

    from reportgen.analysis.stats import channel_stats, map_to_view, select_channels, value_range
    from reportgen.nn.capture import ActivationRecorder

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
        if plan.spatial and maps_in_sheets(settings):
            channels, height, width = plan.output_shape
            layer.sheet_grid = SheetGrid.for_layer(channels, height, width)
        layers.append(layer)
    record.layers = layers

    # Incremental re-runs: inputs whose results are cached skip the network and the
    # encoders (see reportgen.results.store); Grad-CAM needs the gradients, so it turns this off.
    cached_run = cache if cache is not None else InputCacheContext(None)
    model_key = cached_run.model_key(model, settings)
    crop = tuple(int(v) for v in model.preprocessing.crop_size)
    view_size = (crop[-1], crop[0])  # (width, height)
    with ActivationRecorder(model.module, [p.name for p in plans]) as recorder:
        for batch_files in batches(usable, settings.batch_size):
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
                    from reportgen.nn.gradcam import grad_cam_and_logits

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
                    write_cached(encoder, staged, view_path, hit.blobs["view"])
                    _replay_gradcam(model, hit, file.id, record, encoder, staged)
                    continue
                record.predictions[file.id] = fresh[file.id]
                # Grad-CAM records in input order, as without the cache.
                cams = record.gradcam.pop(file.id, None)
                if cams is not None:
                    record.gradcam[file.id] = cams
                encode_and_write(
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
                        layer_builder = cached_run.builder(model_key, file.id, layer_part(plan), {})
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
        from reportgen.nn.featurevis import feature_vis_for_model

        store = cache.store if cache is not None and cache.enabled else None
        feature_vis_for_model(model, plans, layers, settings, encoder.write, store)
    _write_examples(model, plans, layers, trackers, fields, usable, encoder)
    return record


def _receptive_fields(model: Any, plans: list[LayerPlan]) -> dict[str, Any]:
    from reportgen.nn.receptive import receptive_fields

    spatial = [p.name for p in plans if p.spatial]
    if not spatial:
        return {}
    size = int(model.preprocessing.crop_size[0])
    return receptive_fields(model.module, spatial, size, model.device)


def _gradcam_layer(model: Any, settings: RunSettings) -> str | None:
    from reportgen.nn.gradcam import last_conv_layer

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
    encoder: ImageEncoder,
    table: np.ndarray,
    alpha: float,
    builders: dict[str, Any] | None = None,
    top_cams: list[Any] | None = None,
) -> None:
    """Grad-CAM for each input's top class and, when asked, the target class.

    ``builders``: per input id, where the cache collects the maps and pictures.
    ``top_cams``: the top-class Grad-CAMs, when the caller's pass already made them."""
    from reportgen.nn.gradcam import grad_cam

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
            encode_and_write(
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
    model: Any, hit: Any, input_id: str, record: ModelRecord, encoder: ImageEncoder, staged: Any
) -> None:
    """Grad-CAM records and pictures of an input, from the cache."""
    for kind, suffix, class_index, layer, cam_map in hit.header.get("gradcam", []):
        image = paths.gradcam_image(model.id, input_id + suffix)
        write_cached(encoder, staged, image, hit.blobs[f"gradcam:{kind}"])
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
    plans: list[LayerPlan],
    layers: list[LayerRecord],
    trackers: dict[str, TopExamples],
    fields: dict[str, Any],
    usable: list[InputFile],
    encoder: ImageEncoder,
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
                    {"input": example.input_id, "value": finite(example.value), "box": box}
                )
                by_input.setdefault(example.input_id, []).append((tiles, k, box))
            if examples:
                channel.examples_image = paths.examples_image(model.id, plan.name, channel.index)
                channel_tiles[channel.examples_image] = tiles

    # Inputs are decoded here, one at a time (decoding sets warning filters, which are
    # process-wide: never on two threads at once); the crops of each run on the encoder
    # threads (Pillow releases the GIL while it resamples). Crops are small tiles, so
    # memory does not grow with inputs.
    def crop_input(view: Any, wanted: list[tuple[list[Any], int, list[int]]]) -> None:
        cropper = imaging.ExampleCropper(view)
        for tiles, k, box in wanted:
            tiles[k] = cropper.tile(box)

    for file in usable:
        wanted = by_input.get(file.id)
        if wanted:
            encoder.submit(crop_input, model.preprocessing.view(load_image(file).image), wanted)
    encoder.drain()  # every tile is cropped before its strip is put together
    for strip, tiles in channel_tiles.items():
        encoder.write(strip, imaging.tiles_strip_jpeg, tiles)


def _record_layer_input(
    layer: LayerRecord,
    plan: LayerPlan,
    model_id: str,
    input_id: str,
    stats: Any,
    values: np.ndarray | None,
    view: np.ndarray | None,
    settings: RunSettings,
    staged: Any,
    encoder: ImageEncoder,
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
        builder.entry.arrays.update({name: getattr(stats, name) for name in STAT_ARRAYS})
        builder.entry.header["map_size"] = list(stats.map_size)
    if not plan.spatial:
        chart = paths.ranked_chart(model_id, plan.name, input_id)
        layer.charts[input_id] = chart
        if cached is not None:
            write_cached(encoder, staged, chart, cached["blobs"]["chart"])
        else:
            assert values is not None
            names = [f"unit {i}" for i in range(values.shape[0])]
            title = f"{plan.name}: top values"
            encode_and_write(
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
    grid = layer.sheet_grid
    # Where the maps go: one sheet for the layer (folder reports), or a file per map.
    map_files: dict[str, str] = {}
    if grid is not None:
        map_files["sheet"] = layer.sheets[input_id] = paths.map_sheet(model_id, plan.name, input_id)
    else:
        for c, channel in enumerate(layer.channels):
            map_files[f"map{c}"] = channel.maps[input_id] = paths.map_image(
                model_id, plan.name, input_id, c
            )
    overlays = (
        {c: paths.overlay_image(model_id, plan.name, input_id, c) for c in chosen}
        if settings.overlay_files
        else {}
    )
    for c, overlay in overlays.items():
        layer.channels[c].overlays[input_id] = overlay

    if cached is not None:
        blobs = cached["blobs"]

        def write_cached_maps() -> None:
            for name, path in map_files.items():
                staged.write(path, blobs[name])
            for c, overlay in overlays.items():
                staged.write(overlay, blobs[f"overlay{c}"])

        encoder.submit(write_cached_maps)
        return

    assert values is not None and view is not None
    if by_layer:
        lows = np.full(channels, layer_low, dtype=np.float64)
        highs = np.full(channels, layer_high, dtype=np.float64)
    else:
        lows, highs = np.asarray(stats.min, np.float64), np.asarray(stats.max, np.float64)

    def encode_maps(vals: np.ndarray) -> None:
        # The whole layer at once: levels in one numpy pass, PNGs written with zlib.
        if grid is not None:
            encoded = [("sheet", imaging.map_sheet_png(vals, lows, highs, table, grid))]
        else:
            pictures = imaging.map_pngs(vals, lows, highs, table)
            encoded = [(f"map{c}", data) for c, data in enumerate(pictures)]
        for name, data in encoded:
            staged.write(map_files[name], data)
            if builder is not None:
                builder.add(name, data)

    if builder is not None:
        builder.expect(len(map_files))
    # One task per layer and input keeps the queue short; channels of a layer are cheap.
    encoder.submit(encode_maps, values)
    for c, overlay in overlays.items():
        encode_and_write(
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


def _finite_number(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None
