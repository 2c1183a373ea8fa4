"""The weights view and filter pictures of a model's Conv2d layers, once per model.

``with_weights_views``: each chosen Conv2d's input traced to the layer it comes from
(``reportgen.nn.wiring``) and its strongest inputs per output channel
(``reportgen.analysis.weights``), added to its facts. ``encode_kernels``: the pictures,
one sheet per layer and part in a folder report (``reportgen.imaging.kernels``); in a
single-file report, where one data: URI cannot be shared by the tiles of a page, each
channel's filter on its own as before, and the weights view without kernel pictures.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from reportgen.analysis.weights import strongest_inputs
from reportgen.compute.encoding import ImageEncoder
from reportgen.imaging import kernels
from reportgen.imaging import pictures as imaging
from reportgen.nn.models import LoadedModel
from reportgen.results.records import LayerFacts, PictureKey

PictureSink = Callable[[PictureKey, bytes], None]

# The weights view of a channel page: this many strongest positive and as many negative
# input channels (reportgen.analysis.weights), whatever the layer's width.
WEIGHTS_VIEW_PER_SIGN = 6


def with_weights_views(
    model: LoadedModel, layers: tuple[LayerFacts, ...]
) -> tuple[LayerFacts, ...]:
    """``layers`` with the input source and strongest inputs of every Conv2d."""
    if not any(layer.weight is not None for layer in layers):
        return layers
    from reportgen.nn.wiring import conv_input_sources

    crop = tuple(int(v) for v in model.preprocessing.crop_size)
    size = (crop[0], crop[-1])
    sources = conv_input_sources(model.module, size, model.device, [lay.name for lay in layers])
    modules = dict(model.module.named_modules())
    channels = {layer.name: layer.channels for layer in layers}
    updated = []
    for layer in layers:
        source = sources.get(layer.name)
        if layer.weight is None or source is None:
            updated.append(layer)
            continue
        groups = int(modules[layer.name].groups)
        linked = source.layer
        if linked is not None and channels[linked] != layer.weight.shape[1] * groups:
            linked = None  # cannot happen through per-channel modules; never link wrongly
        updated.append(
            dataclasses.replace(
                layer,
                groups=groups,
                reads_image=source.network_input,
                input_layer=linked,
                input_module=source.module,
                input_through=tuple(type(modules[n]).__name__ for n in source.through)
                if linked
                else (),
                strongest=None
                if source.network_input
                else strongest_inputs(layer.weight, groups, WEIGHTS_VIEW_PER_SIGN),
            )
        )
    return tuple(updated)


def encode_kernels(
    layer: LayerFacts, encoder: ImageEncoder, emit: PictureSink, sheets: bool
) -> None:
    """A layer's filter pictures (where they say something) and weights-view kernels."""
    if layer.weight is None:
        return
    if not sheets:
        if layer.filter_informative:
            for channel, kernel in enumerate(layer.weight):
                encoder.submit(_emit_channel_filter, layer, channel, kernel, emit)
        return
    if layer.filter_informative:
        encoder.submit(_emit_filter_sheets, layer, emit)
    if layer.strongest is not None and layer.weight[0, 0].size > 1:
        encoder.submit(_emit_kernel_sheet, layer, emit)


def _emit_filter_sheets(layer: LayerFacts, emit: PictureSink) -> None:
    assert layer.weight is not None
    for part, data in kernels.filter_sheet_pngs(layer.weight, layer.filter_parts).items():
        emit(PictureKey("filter_sheet", layer.name, -1, part), data)


def _emit_kernel_sheet(layer: LayerFacts, emit: PictureSink) -> None:
    assert layer.weight is not None and layer.strongest is not None
    emit(
        PictureKey("kernel_sheet", layer.name),
        kernels.kernel_sheet_png(layer.weight, layer.strongest),
    )


def _emit_channel_filter(
    layer: LayerFacts, channel: int, kernel: np.ndarray, emit: PictureSink
) -> None:
    if layer.filter_parts[0] == "mean":
        emit(PictureKey("filter", layer.name, channel, "mean"), imaging.filter_mean_png(kernel))
        return
    emit(PictureKey("filter", layer.name, channel, "rgb"), imaging.filter_rgb_png(kernel))
    for colour, data in imaging.filter_channel_pngs(kernel).items():
        emit(PictureKey("filter", layer.name, channel, colour), data)
