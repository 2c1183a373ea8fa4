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
from reportgen.compute.finite import require_finite
from reportgen.imaging import pictures as imaging
from reportgen.imaging.sheets import SheetGrid
from reportgen.inputs.files import InputFile, load_image
from reportgen.nn.channel_stats import ChannelStats
from reportgen.nn.models import LoadedModel
from reportgen.options import SelectionOptions
from reportgen.results.records import (
    GRADCAM_TARGET,
    GRADCAM_TOP,
    GradCamResult,
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
    gradcam: list[tuple[GradCamResult, np.ndarray]]  # record, unrounded map for the overlay
    layers: dict[str, LayerOutput]


@dataclass(frozen=True)
class PassPlan:
    """What a batch's pass computes besides the recorded layers (resolved for a model:
    ``compute.model_run.pass_plan``)."""

    gradcam_layer: str | None  # None: no Grad-CAM
    target: int | None  # --target-class as an index
    contributions: bool  # each recorded layer's channel contributions

    def class_kinds(self, count: int) -> dict[str, list[int | None]]:
        """The class kinds whose gradients the pass takes (each input's class; None: its
        top prediction), the top prediction's first; none when nothing needs them."""
        if self.gradcam_layer is None and not self.contributions:
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
    one backward pass per class kind when Grad-CAM or the contributions need it."""
    import torch

    from reportgen.nn.gradcam import cams_of
    from reportgen.nn.gradients import batch_pass, contributions
    from reportgen.nn.reduce import channel_stats

    views = [model.preprocessing.view(load_image(f).image, f.source) for f in files]
    batch = torch.stack([model.preprocessing.tensor(v) for v in views]).to(model.device)
    names = [layer.name for layer in layers]
    wanted = [*([plan.gradcam_layer] if plan.gradcam_layer else []), *(names * plan.contributions)]
    done = batch_pass(model.module, batch, names, wanted, plan.class_kinds(len(files)))
    cams = {
        kind: cams_of(done.values, grads, plan.gradcam_layer)
        for kind, grads in done.classes.items()
        if plan.gradcam_layer is not None
    }
    probabilities = torch.softmax(done.logits, dim=1)
    top = torch.topk(probabilities, k=min(5, probabilities.shape[1]), dim=1)
    per_layer = {}
    for name in names:
        attributed = {
            CONTRIBUTION_OF_KIND[kind]: contributions(
                done.values[name], grads.gradients.get(name, torch.zeros_like(done.values[name]))
            )
            for kind, grads in done.classes.items()
            if plan.contributions
        }
        recorded = done.recorded.pop(name)
        per_layer[name] = (channel_stats(recorded, attributed), recorded.numpy())
    require_finite(model.name, files, done.logits, per_layer)
    cams_by_input = _cams_by_input(
        len(files), cams.get(GRADCAM_TOP, []), cams.get(GRADCAM_TARGET, [])
    )
    return [
        PassOutput(
            input_id=file.id,
            view=views[b],
            predictions=[
                (int(i), round(float(p), 6)) for p, i in zip(top.values[b], top.indices[b])
            ],
            gradcam=[
                (_cam_record(kind, cam, plan.gradcam_layer), cam.map)
                for kind, cam in cams_by_input[b]
            ],
            layers={
                name: LayerOutput(stats[b], values[b])
                for name, (stats, values) in per_layer.items()
            },
        )
        for b, file in enumerate(files)
    ]


def _cams_by_input(count: int, top_cams: list[Any], target_cams: list[Any]) -> list[list[Any]]:
    """Each input's Grad-CAMs, the top class's first: (kind, GradCam)."""
    return [
        ([(GRADCAM_TOP, top_cams[b])] if top_cams else [])
        + ([(GRADCAM_TARGET, target_cams[b])] if target_cams else [])
        for b in range(count)
    ]


def _cam_record(kind: str, cam: Any, layer: str | None) -> GradCamResult:
    """A Grad-CAM as a result records it: its map rounded to six places."""
    return GradCamResult(
        kind, cam.class_index, str(layer), [[round(float(v), 6) for v in row] for row in cam.map]
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
        for cam, cam_map in output.gradcam:
            pictures[PictureKey("gradcam", part=cam.kind)] = imaging.overlay_jpeg(
                view_array, cam_map, 0.0, 1.0, options.table, options.alpha
            )
    result = InputResult(
        output.input_id, output.predictions, [cam for cam, _ in output.gradcam], {}, pictures
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
