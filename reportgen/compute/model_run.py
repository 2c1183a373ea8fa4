"""One model over all inputs: its layers planned, its inputs in batches through the one
cache branch, each finished result handed on in input order and folded into the model's
results; then the work that needs every input (dataset examples, feature visualisation)
and the once-per-model pictures (examples; filters: compute.weights_view)."""

from __future__ import annotations

import dataclasses
import re
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any, Protocol

import numpy as np

from reportgen.compute.batch import PassPlan, PictureOptions, finish_input, forward_batch
from reportgen.compute.cached import ResultStore, stored_else_computed
from reportgen.compute.encoding import ImageEncoder
from reportgen.compute.weights_view import with_weights_views
from reportgen.errors import ReportgenError, UsageError
from reportgen.imaging import pictures as imaging
from reportgen.imaging.sheets import EXAMPLE_SHEET_CHANNELS, example_firsts_grid, example_grid
from reportgen.inputs.files import InputFile, load_image
from reportgen.nn.models import LoadedModel
from reportgen.options import ComputeOptions, SelectionOptions
from reportgen.results.records import (
    DirectEffect,
    InputResult,
    LayerFacts,
    ModelFacts,
    PictureKey,
)
from reportgen.results.run import ModelResults
from reportgen.statistics import CONTRIBUTION, TARGET_CONTRIBUTION

Progress = Callable[[int], None]
# Where pictures go: the caller (the pipeline) knows the report; compute does not.
PictureSink = Callable[[PictureKey, bytes], None]
ResultSink = Callable[[InputResult, int], None]  # a complete result and its input index


def batches(items: list[InputFile], size: int) -> Iterator[list[InputFile]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def plan_layers(model: LoadedModel, compute: ComputeOptions) -> tuple[ModelFacts, list[str]]:
    """The model's facts with its chosen layers: names resolved, shapes traced, kernels
    and receptive fields read; and what was said on the way. Layers whose output is not
    [C, H, W] or [C] are left out."""
    from reportgen.nn.layers import resolve_layers, trace_layers

    size = int(model.preprocessing.crop_size[0])
    infos = trace_layers(model.module, size, model.device)
    chosen = resolve_layers(infos, compute.layers, model.name)
    by_name = {info.name: info for info in infos}
    modules = dict(model.module.named_modules())
    warnings: list[str] = []
    kept = []
    for name in chosen:
        info = by_name[name]
        shape = tuple(info.output_shape or ())
        if len(shape) not in (1, 3):
            warnings.append(
                f"{model.id}: layer {name} ({info.type}) has output shape {shape}; "
                "only [C, H, W] and [C] outputs are shown, so it is left out"
            )
            continue
        kept.append(_layer_facts(model, modules[name], info, shape))
        warnings.extend(check_channel_options(model.id, name, int(shape[0]), compute.selection))
    if not kept:
        raise ReportgenError(f"no layer of {model.id!r} can be shown; choose others with -l")
    crop = tuple(int(v) for v in model.preprocessing.crop_size)
    layers = with_weights_views(model, _with_fields(model, kept, (crop[-1], crop[0])))
    if compute.contributions:
        layers = _with_exactness(model, layers)
    facts = ModelFacts(
        id=model.id,
        name=model.name,
        weights=model.weights.label,
        weights_detail=model.weights.describe(),
        preprocessing=model.preprocessing.describe(),
        notes=(*model.notes, *_default_layers_note(infos, compute.layers)),
        label=model.display_label,
        categories=tuple(model.categories) if model.categories else None,
        view_size=(crop[-1], crop[0]),
        layers=layers,
        contribution_fields=contribution_fields_of(model, compute),
    )
    return facts, warnings


def contribution_fields_of(model: LoadedModel, compute: ComputeOptions) -> tuple[str, ...]:
    """The contribution fields of the model's results: the top class's, and the target
    class's when one is given; none with --no-contributions."""
    if not compute.contributions:
        return ()
    if target_class(model, compute.target_class) is None:
        return (CONTRIBUTION,)
    return (CONTRIBUTION, TARGET_CONTRIBUTION)


# Classes a channel raises most and lowers most, by its weight in the final Linear.
DIRECT_EFFECT_CLASSES = 5


def _with_exactness(model: LoadedModel, layers: tuple[LayerFacts, ...]) -> tuple[LayerFacts, ...]:
    """The layers pooled straight into the final Linear marked exact, with each channel's
    direct effect on the logits."""
    from reportgen.analysis.weights import extreme_weights
    from reportgen.nn.pooled import pooled_into_classifier

    size = tuple(model.preprocessing.crop_size)
    found = pooled_into_classifier(model.module, size, model.device, [la.name for la in layers])
    return tuple(
        dataclasses.replace(
            layer,
            exact_contributions=True,
            direct_effects=tuple(
                DirectEffect(tuple(raises), tuple(lowers))
                for raises, lowers in extreme_weights(found[layer.name], DIRECT_EFFECT_CLASSES)
            ),
        )
        if layer.name in found
        else layer
        for layer in layers
    )


def _layer_facts(model: LoadedModel, module: Any, info: Any, shape: tuple[int, ...]) -> LayerFacts:
    """A chosen layer's facts from its traced output; a Conv2d's kernels with them."""
    import torch

    from reportgen.nn.timm_models import applied_conv_weight

    weight = None
    if isinstance(module, torch.nn.Conv2d):
        # The weights the layer applies (timm's standardised-weight convolutions differ
        # from their stored parameter).
        weight = applied_conv_weight(module).detach().float().cpu().numpy()
    categories = model.categories
    return LayerFacts(
        info.name,
        info.type,
        info.value,
        shape,
        has_maps(shape),
        weight,
        class_labels=(
            tuple(categories)
            if categories and info.at_logits and shape[0] == len(categories)
            else ()
        ),
    )


def _with_fields(
    model: LoadedModel, layers: list[LayerFacts], view_size: tuple[int, int]
) -> tuple[LayerFacts, ...]:
    """Each map layer's receptive field, and whether every cell's covers the view."""
    fields = receptive_fields(model, layers)
    return tuple(
        dataclasses.replace(
            layer,
            receptive_field=fields[layer.name].size[0] if layer.name in fields else None,
            field_covers_view=layer.name in fields
            and covers_view(fields[layer.name], layer.output_shape, view_size),
        )
        for layer in layers
    )


def _default_layers_note(infos: Any, layers: tuple[str, ...]) -> tuple[str, ...]:
    """What the default layer set left out, said in the report (the model's notes)."""
    from reportgen.nn.layers import default_layers, gate_layers

    gates = gate_layers(infos)
    if layers or not gates or not set(gates).isdisjoint(default_layers(infos)):
        return ()
    return (
        f"{len(gates)} Conv2d layers with a 1x1 output (one value per channel, such as "
        "squeeze-and-excitation gates) are not shown by default: -l conv shows every Conv2d",
    )


def covers_view(field: Any, shape: tuple[int, ...], view_size: tuple[int, int]) -> bool:
    """Every cell's receptive field is the whole view (width, height): the first and the
    last cell's are (the others lie between them)."""
    whole = [0, 0, view_size[0], view_size[1]]
    last = (int(shape[1]) - 1, int(shape[2]) - 1)
    return field.box(0, 0, view_size) == whole and field.box(*last, view_size) == whole


def has_maps(shape: tuple[int, ...]) -> bool:
    """[C, H, W] with more than one cell: a channel's map. A 1x1 "map" (a squeeze-and-
    excitation gate, a convolution after global pooling) is one value per channel: it is
    shown as units, like a Linear layer's, with no maps and no receptive field."""
    return len(shape) == 3 and shape[1] * shape[2] > 1


def check_channel_options(
    model_id: str, layer: str, channels: int, selection: SelectionOptions
) -> list[str]:
    """Manual channels must exist in the layer; a --top-k above its count is clamped, said
    so (the warning returned)."""
    if selection.strategy == "manual":
        bad = [c for c in selection.channels if not 0 <= c < channels]
        if bad:
            raise UsageError(
                f"--channels {bad[0]} is out of range for layer {layer} of {model_id!r}: "
                f"it has {channels} channels (0-{channels - 1})"
            )
    elif selection.top_k > channels:
        return [
            f"{model_id}: layer {layer} has {channels} channels; --top-k {selection.top_k} "
            f"clamped to {channels}"
        ]
    return []


def receptive_fields(model: LoadedModel, layers: list[LayerFacts]) -> dict[str, Any]:
    from reportgen.nn.receptive import receptive_fields as fields_of

    spatial = [layer.name for layer in layers if layer.spatial]
    if not spatial:
        return {}
    size = int(model.preprocessing.crop_size[0])
    return fields_of(model.module, spatial, size, model.device)


def gradcam_layer(model: LoadedModel, compute: ComputeOptions) -> str | None:
    from reportgen.nn.gradcam import default_gradcam_layer

    if not compute.gradcam:
        return None
    if compute.gradcam_layer:
        if compute.gradcam_layer not in dict(model.module.named_modules()):
            raise ReportgenError(
                f"--gradcam-layer {compute.gradcam_layer!r} is not a layer of {model.id!r} "
                f"(see 'reportgen layers {model.name}')"
            )
        return compute.gradcam_layer
    # The last Conv2d that runs: the last in module order may be a head that eval skips.
    return default_gradcam_layer(model.module, tuple(model.preprocessing.crop_size), model.device)


_WHOLE_NUMBER = re.compile(r"^-?[0-9]{1,18}$")


def target_class(model: LoadedModel, target: str | None) -> int | None:
    """--target-class as an index: a number, or a category name of the model."""
    if target is None or target == "":
        return None
    if _WHOLE_NUMBER.match(target.strip()):  # ASCII: str.isdigit takes "²", int() does not
        return int(target)
    names = [c.lower() for c in (model.categories or [])]
    if target.lower() in names:
        return names.index(target.lower())
    import difflib

    close = difflib.get_close_matches(target, model.categories or [], n=3)
    hint = f"; closest: {', '.join(close)}" if close else ""
    raise UsageError(f"--target-class {target!r} is not a class of {model.id!r}{hint}")


def pass_plan(model: LoadedModel, compute: ComputeOptions) -> PassPlan:
    """What each batch's pass computes for ``model`` besides the recorded layers."""
    return PassPlan(
        gradcam_layer(model, compute),
        target_class(model, compute.target_class),
        compute.contributions,
    )


class Engine(Protocol):
    """Where a model's per-input results are computed (``run_inputs`` drives it):
    ``compute`` hands out a Future per input of a batch, ``flush`` sends what it holds,
    ``lookahead`` shards of ``batches_per_shard`` batches may be in flight."""

    lookahead: int
    batches_per_shard: int

    def compute(self, files: list[InputFile]) -> list[Future[InputResult]]: ...

    def flush(self) -> None: ...


class LocalEngine:
    """Per-input results computed in this process: each batch's forward pass now, its
    pictures on the encoder threads. The engine of a run without ``--cluster``; the Dask
    engine (``compute.dask_engine``) has the same three members."""

    # Units of work in flight beyond the one being folded: the next batch runs through
    # the network while the encoders finish this one.
    lookahead = 1
    batches_per_shard = 1

    def __init__(
        self,
        model: LoadedModel,
        facts: ModelFacts,
        compute: ComputeOptions,
        options: PictureOptions,
        encoder: ImageEncoder,
    ) -> None:
        self.model, self.facts, self.selection = model, facts, compute.selection
        self.options, self.encoder = options, encoder
        self.plan = pass_plan(model, compute)

    def compute(self, files: list[InputFile]) -> list[Future[InputResult]]:
        """One batch: the network now, the rest of each input's result on the encoders."""
        outputs = forward_batch(self.model, self.facts.layers, files, self.plan)
        return [
            self.encoder.future(
                finish_input, output, self.facts.layers, self.selection, self.options
            )
            for output in outputs
        ]

    def flush(self) -> None:
        """Nothing is held back: ``compute`` started each batch already."""


def run_inputs(
    facts: ModelFacts,
    usable: list[InputFile],
    compute: ComputeOptions,
    detail: frozenset[str],
    store: ResultStore,
    engine: Engine,
    on_result: ResultSink,
    progress: Progress | None = None,
) -> ModelResults:
    """Every input through the engine (or from the store), folded into the model's results
    in input order. ``on_result`` gets each complete result (pictures included) once, with
    its index: where its pictures and per-channel statistics go is the caller's business.

    Inputs go in shards of ``engine.batches_per_shard`` batches of ``--batch-size``, cut at
    the same places whatever the engine: a batch's numbers depend (in the last bits) on
    which inputs share it, so every engine computes the same batches."""
    results = ModelResults.empty(facts, compute.examples)
    # Up to engine.lookahead shards are computed while the oldest is folded in; results
    # are folded in input order, whichever finishes first.
    pending: deque[list[Future[InputResult]]] = deque()

    def fold(futures: list[Future[InputResult]]) -> None:
        for future in futures:
            result = future.result()
            index = len(results.inputs)
            on_result(result, index)
            results.add(result.without_pictures(), index, detail=result.input_id in detail)
        if progress:
            progress(len(futures))

    all_batches = list(batches(usable, compute.batch_size))
    step = engine.batches_per_shard
    for start in range(0, len(all_batches), step):
        shard: list[Future[InputResult]] = []
        for batch in all_batches[start : start + step]:
            shard.extend(stored_else_computed(store, batch, engine.compute))
        engine.flush()
        pending.append(shard)
        while len(pending) > engine.lookahead:
            fold(pending.popleft())
    while pending:
        fold(pending.popleft())
    return results


def example_boxes(
    model: LoadedModel, results: ModelResults
) -> dict[str, list[list[dict[str, Any]]]]:
    """Per layer and channel, the top inputs over the run: {input, value, box}, where box is
    the receptive field of the argmax in view pixels (the whole view for 2-D layers)."""
    fields = receptive_fields(model, list(results.facts.layers))
    width, height = results.facts.view_size
    boxes: dict[str, list[list[dict[str, Any]]]] = {}
    for layer in results.facts.layers:
        tracker = results.examples[layer.name]
        field = fields.get(layer.name)
        per_channel = []
        for channel in range(layer.channels):
            per_channel.append(
                [
                    {
                        "input": example.input_id,
                        "value": _finite(example.value),
                        "box": (
                            field.box(example.y, example.x, (width, height))
                            if field is not None and layer.spatial
                            else [0, 0, width, height]
                        ),
                    }
                    for example in tracker.top(channel)
                ]
            )
        boxes[layer.name] = per_channel
    return boxes


def encode_example_strips(
    model: LoadedModel,
    boxes: dict[str, list[list[dict[str, Any]]]],
    usable: list[InputFile],
    encoder: ImageEncoder,
    emit: PictureSink,
    sheets: bool,
) -> None:
    """Each channel's top inputs as one strip of crops; with ``sheets``, the strips of
    each block of channels in one sheet (imaging.sheets.example_grid). Inputs are read
    again, one at a time: memory stays bounded."""
    strips: dict[PictureKey, list[Any]] = {}
    wanted_by_input: dict[str, list[tuple[list[Any], int, list[int]]]] = {}
    for layer, channels in boxes.items():
        for channel, examples in enumerate(channels):
            if not examples:
                continue
            tiles: list[Any] = [None] * len(examples)
            strips[PictureKey("examples", layer, channel)] = tiles
            for k, example in enumerate(examples):
                wanted_by_input.setdefault(example["input"], []).append((tiles, k, example["box"]))

    # Inputs are decoded here, one at a time (decoding sets warning filters, which are
    # process-wide: never on two threads at once); the crops of each run on the encoder
    # threads (Pillow releases the GIL while it resamples).
    def crop_input(view: Any, wanted: list[tuple[list[Any], int, list[int]]]) -> None:
        cropper = imaging.ExampleCropper(view)
        for tiles, k, box in wanted:
            tiles[k] = cropper.tile(box)

    for file in usable:
        wanted = wanted_by_input.get(file.id)
        if wanted:
            view = model.preprocessing.view(load_image(file).image, file.source)
            encoder.submit(crop_input, view, wanted)
    encoder.drain()  # every tile is cropped before its strip is put together
    if sheets:
        _encode_example_sheets(boxes, strips, encoder, emit)
        return
    for key, tiles in strips.items():
        encoder.submit(lambda k, t: emit(k, imaging.tiles_strip_jpeg(t)), key, tiles)


def _encode_example_sheets(
    boxes: dict[str, list[list[dict[str, Any]]]],
    strips: dict[PictureKey, list[Any]],
    encoder: ImageEncoder,
    emit: PictureSink,
) -> None:
    block = EXAMPLE_SHEET_CHANNELS
    for layer, channels in boxes.items():
        per_strip = max((len(examples) for examples in channels), default=0)
        if per_strip == 0:
            continue
        grid = example_grid(per_strip, imaging.EXAMPLE_TILE)
        # each channel's strongest example, one tile a channel: a layer page's cards
        firsts = [
            strips.get(PictureKey("examples", layer, c), [])[:1] for c in range(len(channels))
        ]
        firsts_grid = example_firsts_grid(len(channels), imaging.EXAMPLE_TILE)
        key = PictureKey("examples", layer, 0, "firsts")
        encoder.submit(_emit_example_sheet, key, firsts, firsts_grid, emit)
        for first in range(0, len(channels), block):
            rows = [
                strips.get(PictureKey("examples", layer, c), [])
                for c in range(first, min(first + block, len(channels)))
            ]
            key = PictureKey("examples", layer, first // block, "sheet")
            encoder.submit(_emit_example_sheet, key, rows, grid, emit)


def _emit_example_sheet(key: PictureKey, rows: list[Any], grid: Any, emit: PictureSink) -> None:
    emit(key, imaging.example_sheet_jpeg(rows, grid))


def _finite(value: float) -> float | None:
    return None if not np.isfinite(value) else float(value)
