"""One batch of inputs through one model, into per-input results.

Two steps, so the network never waits for the encoders:

* ``forward_batch`` (main thread): decode, preprocess, one hooked forward pass and, for
  Grad-CAM and the channel contributions, one backward pass per class kind (the top
  prediction, the target class) from the same graph; per-channel statistics. Gives one
  ``PassOutput`` per input.
* ``finish_input`` (an encoder thread): selection, value ranges and the encoded pictures of
  one input: a complete ``InputResult``.

No cache and no report paths here: the cache branch is ``compute.cached``, and the report
stage decides where pictures go.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from reportgen.analysis.stats import select_channels, value_range
from reportgen.compute.allocator import keep_freed_memory
from reportgen.compute.finite import require_finite
from reportgen.explanations import CONTRIBUTIONS, ExplanationMethod, methods
from reportgen.imaging import pictures as imaging
from reportgen.imaging.sheets import SheetGrid
from reportgen.inputs.files import InputFile, load_image
from reportgen.nn.channel_stats import ChannelStats
from reportgen.nn.models import LoadedModel
from reportgen.options import SelectionOptions
from reportgen.results.records import (
    GRADCAM_TARGET,
    GRADCAM_TOP,
    CamResult,
    InputResult,
    LayerFacts,
    LayerResult,
    PictureKey,
)
from reportgen.statistics import CONTRIBUTION, TARGET_CONTRIBUTION


@dataclass(frozen=True)
class PictureOptions:
    """Which pictures a per-input result carries."""

    table: np.ndarray  # the colormap, 256x3 uint8
    alpha: float
    sheets: bool  # a layer's maps tiled into one sheet (folder reports), else one per map
    overlay_files: bool  # also each selected channel's overlay as a JPEG
    scale_by_layer: bool  # --scale layer: one colour range per layer and input
    encode: bool = True  # False: statistics and selections only (``reportgen.analyze``)
    # The detail inputs (ids): only these get every channel's map and overlays.
    detail: frozenset[str] = frozenset()


@dataclass
class LayerOutput:
    stats: ChannelStats
    values: np.ndarray  # [C, H, W] or [C], float32


@dataclass
class PassOutput:
    """One input after the forward pass: numpy and PIL only."""

    input_id: str
    view: Any  # PIL image of the network's view
    predictions: list[tuple[int, float]]
    cams: list[tuple[CamResult, np.ndarray]]  # record, unrounded map for the overlay
    layers: dict[str, LayerOutput]


@dataclass(frozen=True)
class PassPlan:
    """What a batch's pass computes besides the recorded layers: the enabled explanation
    methods (``reportgen.explanations``), resolved for a model by
    ``compute.model_run.pass_plan``."""

    methods: tuple[str, ...]  # the enabled methods' names
    cam_layer: str | None  # the map methods' layer (--gradcam-layer)
    target: int | None  # --target-class as an index

    def enabled(self) -> tuple[ExplanationMethod, ...]:
        """The enabled methods, in the registry's order."""
        return tuple(m for m in methods() if m.name in self.methods)

    def wanted_layers(self) -> list[str]:
        """The layers whose values and gradients the enabled methods need."""
        needed = any(method.needs == "cam_layer" for method in self.enabled())
        return [self.cam_layer] if needed and self.cam_layer is not None else []

    def attributed_layers(self, recorded: list[str]) -> list[str]:
        """The layers whose contributions the enabled methods need."""
        needed = any(method.needs == "recorded_layers" for method in self.enabled())
        return list(recorded) if needed else []

    def class_kinds(self, count: int) -> dict[str, list[int | None]]:
        """The class kinds whose gradients the pass takes (each input's class; None: its
        top prediction), the top prediction's first; none when no method needs them."""
        if not self.enabled():
            return {}
        kinds: dict[str, list[int | None]] = {GRADCAM_TOP: [None] * count}
        if self.target is not None:
            kinds[GRADCAM_TARGET] = [self.target] * count
        return kinds


# The contribution field of each class kind (``reportgen.statistics``).
CONTRIBUTION_OF_KIND = {GRADCAM_TOP: CONTRIBUTION, GRADCAM_TARGET: TARGET_CONTRIBUTION}


def forward_batch(
    model: LoadedModel, layers: tuple[LayerFacts, ...], files: list[InputFile], plan: PassPlan
) -> list[PassOutput]:
    """The network's part of a batch: everything that needs torch. One forward pass, and
    one backward pass per class kind when an enabled method needs gradients."""
    import torch

    from reportgen.nn.gradients import batch_pass
    from reportgen.nn.reduce import channel_stats

    keep_freed_memory()
    views = [model.preprocessing.view(load_image(f).image, f.source) for f in files]
    batch = torch.stack([model.preprocessing.tensor(v) for v in views]).to(model.device)
    names = [layer.name for layer in layers]
    done = batch_pass(
        model.module,
        batch,
        names,
        plan.wanted_layers(),
        plan.class_kinds(len(files)),
        plan.attributed_layers(names),
    )
    maps = _maps(plan, done, len(files))
    probabilities = torch.softmax(done.logits, dim=1)
    top = torch.topk(probabilities, k=min(5, probabilities.shape[1]), dim=1)
    per_layer = {}
    for name in names:
        attributed = _contributions(plan, done, name)
        recorded = done.recorded.pop(name)
        per_layer[name] = (channel_stats(recorded, attributed), recorded.numpy())
    require_finite(model.name, files, done.logits, per_layer)
    return [
        PassOutput(
            input_id=file.id,
            view=views[b],
            predictions=[
                (int(i), round(float(p), 6)) for p, i in zip(top.values[b], top.indices[b])
            ],
            cams=maps[b],
            layers={
                name: LayerOutput(stats[b], values[b])
                for name, (stats, values) in per_layer.items()
            },
        )
        for b, file in enumerate(files)
    ]


def _maps(plan: PassPlan, done: Any, count: int) -> list[list[tuple[CamResult, np.ndarray]]]:
    """Each input's maps: every enabled map method's, each top class first."""
    from reportgen.nn.cams import cam_method

    per_input: list[list[tuple[CamResult, np.ndarray]]] = [[] for _ in range(count)]
    for method in plan.enabled():
        if method.record != "map" or plan.cam_layer is None:
            continue
        for kind, grads in done.classes.items():
            for b, cam in enumerate(
                cam_method(method.name).cams(done.values, grads, plan.cam_layer)
            ):
                per_input[b].append((_cam_record(method.name, kind, cam), cam.map))
    return per_input


def _contributions(plan: PassPlan, done: Any, layer: str) -> dict[str, Any]:
    """A layer's contributions to each class kind's logit ([B, C]), when enabled."""
    if CONTRIBUTIONS not in plan.enabled():
        return {}
    import torch

    channels = done.recorded[layer].shape[:2]
    return {  # a layer off the path to the logits contributes nothing
        CONTRIBUTION_OF_KIND[kind]: grads.contributions.get(layer, torch.zeros(channels))
        for kind, grads in done.classes.items()
    }


def _cam_record(method: str, kind: str, cam: Any) -> CamResult:
    """A map as a result records it: rounded to six places."""
    return CamResult(
        method,
        kind,
        cam.class_index,
        cam.layer,
        [[round(float(v), 6) for v in row] for row in cam.map],
    )


def finish_input(
    output: PassOutput,
    layers: tuple[LayerFacts, ...],
    selection: SelectionOptions,
    options: PictureOptions,
) -> InputResult:
    """Selections, ranges and pictures of one input: its complete result."""
    view_array = np.asarray(output.view, dtype=np.uint8)
    pictures: dict[PictureKey, bytes] = {}
    if options.encode:
        pictures[PictureKey("view")] = imaging.view_jpeg(output.view)
        for cam, cam_map in output.cams:
            pictures[PictureKey(cam.method, part=cam.kind)] = imaging.overlay_jpeg(
                view_array, cam_map, 0.0, 1.0, options.table, options.alpha
            )
    result = InputResult(
        output.input_id, output.predictions, [cam for cam, _ in output.cams], {}, pictures
    )
    maps = options.encode and output.input_id in options.detail
    for layer in layers:
        recorded = output.layers[layer.name]
        result.layers[layer.name] = _layer_result(
            layer, recorded, view_array, selection, options, pictures if maps else None
        )
    return result


def _layer_result(
    layer: LayerFacts,
    recorded: LayerOutput,
    view: np.ndarray,
    selection: SelectionOptions,
    options: PictureOptions,
    pictures: dict[PictureKey, bytes] | None,
) -> LayerResult:
    """Selection and range of one layer; with ``pictures``, a map layer's maps too."""
    stats, values = recorded.stats, recorded.values
    selected = select_channels(
        stats,
        selection.strategy,
        selection.top_k,
        selection.channels,
        selection.interesting_mean,
        selection.interesting_max,
    )
    if not layer.spatial:
        # Units: the pages draw their values from the statistics; no picture.
        return LayerResult(stats, selected)
    low, high = value_range(values)
    if pictures is not None:
        pictures.update(_map_pictures(layer, stats, values, view, (low, high), selected, options))
    return LayerResult(stats, selected, (low, high))


def _map_pictures(
    layer: LayerFacts,
    stats: ChannelStats,
    values: np.ndarray,
    view: np.ndarray,
    layer_range: tuple[float, float],
    selected: list[int],
    options: PictureOptions,
) -> dict[PictureKey, bytes]:
    """Every channel's map (one sheet, or one picture each) and the selected overlays."""
    channels = layer.channels
    if options.scale_by_layer:
        lows = np.full(channels, layer_range[0], dtype=np.float64)
        highs = np.full(channels, layer_range[1], dtype=np.float64)
    else:
        lows, highs = np.asarray(stats.min, np.float64), np.asarray(stats.max, np.float64)
    pictures: dict[PictureKey, bytes] = {}
    # The whole layer at once: levels in one numpy pass, PNGs written with zlib.
    if options.sheets:
        grid = SheetGrid.for_layer(*layer.output_shape)
        sheet = imaging.map_sheet_png(values, lows, highs, options.table, grid)
        pictures[PictureKey("sheet", layer.name)] = sheet
    else:
        for c, data in enumerate(imaging.map_pngs(values, lows, highs, options.table)):
            pictures[PictureKey("map", layer.name, c)] = data
    if options.overlay_files:
        for c in sorted(set(selected)):
            pictures[PictureKey("overlay", layer.name, c)] = imaging.overlay_jpeg(
                view, values[c], float(lows[c]), float(highs[c]), options.table, options.alpha
            )
    return pictures
