"""Filters and the weights view in pages: records from the layer's facts, and the HTML.

In a folder report a layer's filters are tiles of its filter sheets and the weights
view's kernels tiles of its kernel sheet (``reportgen.imaging.kernels``), shown as map
tiles are (``reportgen.report.tiles``). A channel page's weights view lists its strongest
input channels, positive and negative, each with its weight, its kernel (over 1x1) and a
link to that input channel's page where the input layer is in the report. Built in
Python, every shown text escaped: a big report has tens of thousands of channel pages.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from markupsafe import Markup

from reportgen.imaging.kernels import filter_grid, kernel_grid, kernel_slots, kernel_tile
from reportgen.report import paths
from reportgen.report.data import LayerRecord, WeightsView
from reportgen.report.text import escape_text as esc
from reportgen.report.text import format_number
from reportgen.report.tiles import sheet_tile
from reportgen.results.records import LayerFacts

Url = Callable[[str], str]


def add_kernels(record: LayerRecord, model_id: str, layer: LayerFacts, sheets: bool) -> None:
    """A Conv2d layer's filter pictures and weights view, as its record holds them."""
    weight = layer.weight
    if weight is None:
        return
    rgb = layer.filter_parts[0] == "rgb"
    record.kernel_shown = layer.filter_informative
    record.filter_rgb = rgb
    # Cards are small: a filter there shows colour (over RGB) or one whole kernel (a
    # depthwise one); the mean over hundreds of input channels says little at 32 px.
    record.cards_filter = record.kernel_shown and (rgb or weight.shape[1] == 1)
    if sheets and record.kernel_shown:
        record.filter_grid = filter_grid(weight)
        record.filter_sheets = {
            part: paths.filter_sheet(model_id, layer.name, part) for part in layer.filter_parts
        }
    if layer.strongest is None:
        return
    view = WeightsView(
        model_id=model_id,
        strongest=layer.strongest,
        groups=layer.groups,
        in_channels=int(weight.shape[1]) * layer.groups,
        kernel=(int(weight.shape[2]), int(weight.shape[3])),
        source_layer=layer.input_layer,
        source_module=layer.input_module,
        through=list(layer.input_through),
    )
    if layer.input_layer is not None:
        view.source_pages = [
            paths.channel_page(model_id, layer.input_layer, c) for c in range(view.in_channels)
        ]
    if sheets and weight[0, 0].size > 1 and kernel_slots(layer.strongest) > 0:
        view.kernel_sheet = paths.kernel_sheet(model_id, layer.name)
        view.kernel_grid = kernel_grid(weight, layer.strongest)
    record.weights_view = view


def filter_picture(
    url: Url, layer: Any, channel: Any, part: str, classes: str, alt: str, lazy: bool = True
) -> Markup:
    """A channel's filter (``part``: rgb/r/g/b/mean): a tile of the layer's filter sheet,
    or in a single-file report its own picture; empty where the layer has none. ``lazy``
    as ``sheet_tile``'s."""
    if layer.filter_grid is not None and part in layer.filter_sheets:
        sheet = layer.filter_sheets[part]
        tile = sheet_tile(url, layer.filter_grid, channel.index, sheet, classes, alt, lazy)
        return Markup(tile)
    if part in channel.filter:
        return Markup(
            f'<img class="{esc(classes)}" src="{esc(url(channel.filter[part]))}" alt="{esc(alt)}">'
        )
    return Markup("")


def card_filter(url: Url, layer: Any, channel: Any) -> str:
    """The filter on a layer page's card (RGB where the layer has it), or nothing."""
    if not layer.cards_filter:
        return ""
    part = "rgb" if layer.filter_rgb else "mean"
    return str(
        filter_picture(url, layer, channel, part, "filter", f"Filter of channel {channel.index}")
    )


def _score(view: WeightsView) -> str:
    kh, kw = view.kernel
    return "the weight" if kh * kw == 1 else f"the {kh}x{kw} slice's L2 norm, signed by its sum"


def _shown(view: WeightsView) -> str:
    kh, kw = view.kernel
    return (
        "its weight"
        if kh * kw == 1
        else f"its {kh}x{kw} kernel and their L2 norm, signed by its sum"
    )


def _source(url: Url, view: WeightsView) -> str:
    if view.source_layer is not None:
        link = esc(url(paths.layer_page(view.model_id, view.source_layer)))
        text = f'<a href="{link}">{esc(view.source_layer)}</a>'
        return text + (" through " + esc(", ".join(view.through)) if view.through else "")
    if view.source_module is not None:
        return f"{esc(view.source_module)} (not a layer of this report)"
    return "a sum or function outside any module"


def _reads(view: WeightsView) -> str:
    per_output = view.strongest.inputs_per_output
    if view.groups == 1:
        return f"all {view.in_channels} input channels"
    if per_output == 1:
        return f"one of the {view.in_channels} input channels (depthwise)"
    return (
        f"the {per_output} input channels of its group ({view.groups} groups of {view.in_channels})"
    )


def weights_note(url: Url, layer: Any) -> Markup:
    """The layer page's account of its channels' weights views."""
    view: WeightsView = layer.weights_view
    listed = (
        f"the input channels with the strongest weights, {view.strongest.per_sign} positive "
        f"and {view.strongest.per_sign} negative"
        if view.strongest.inputs_per_output > 1
        else "its one input channel and its weight"
    )
    text = (
        f"each channel page lists {listed}, by {_score(view)}; each channel reads "
        f"{_reads(view)}, which are the channels of {_source(url, view)}. Each item: "
        f"the input channel, then {_shown(view)}."
    )
    if view.source_pages:
        text += " Each links to that input channel's page."
    if view.kernel_grid is not None:
        text += " Kernels in grey: 0 is mid-grey, white and black the largest weight shown."
    return Markup(text)


def weights_view(url: Url, layer: Any, channel: Any) -> Markup:
    """A channel page's weights view: its strongest inputs of each sign, strongest first.
    Kept short (tens of thousands of pages): the layer page explains it (``weights_note``,
    in its "About this layer's channel pages", where the channel page links)."""
    view: WeightsView | None = layer.weights_view
    if view is None:
        return Markup("")
    strongest = view.strongest
    lists: dict[bool, list[str]] = {True: [], False: []}
    for rank, (_, source, value) in enumerate(strongest.shown(channel.index)):
        picture = ""
        if view.kernel_grid is not None and view.kernel_sheet is not None:
            tile = kernel_tile(strongest, channel.index, rank)
            sheet = view.kernel_sheet
            picture = sheet_tile(url, view.kernel_grid, tile, sheet, "kernel", "kernel", lazy=False)
        # With a kernel picture the number beside it is enough; without one (1x1 kernels)
        # the item says what the numbers are: an input channel and its weight.
        name = f"{picture}{source}" if picture else f"channel {source}"
        if view.source_pages:
            item = f'<a href="{esc(url(view.source_pages[source]))}">{name}</a>'
        else:
            item = name
        weight = esc(format_number(value))
        if not picture:
            weight = f'<span class="meta">weight</span> {weight}'
        lists[value > 0].append(f"<li>{item} {weight}</li>")
    parts = ['<section aria-labelledby="wv-h">\n<h2 id="wv-h">Weights from its input</h2>\n']
    for positive, label in ((True, "Positive"), (False, "Negative")):
        if lists[positive]:
            parts.append(f'<h3>{label}</h3>\n<ol class="weights">{"".join(lists[positive])}</ol>\n')
    parts.append("</section>\n")
    return Markup("".join(parts))


def kernels_entry(layer: LayerRecord) -> dict[str, Any] | None:
    """For the manifest: where a Conv2d layer's filters and weights view are (bounded:
    the strongest inputs themselves are the model's, recomputed from its weights)."""
    if layer.filter_grid is None and layer.weights_view is None:
        return None
    entry: dict[str, Any] = {
        "filter_sheet": layer.filter_grid.describe() if layer.filter_grid else None,
        "filter_sheets": dict(layer.filter_sheets),
    }
    view = layer.weights_view
    if view is not None:
        entry["weights_view"] = {
            "per_sign": view.strongest.per_sign,
            "score": "L2 norm of W[o, i] (kh x kw), signed by its sum",
            "input_layer": view.source_layer,
            "input_module": view.source_module,
            "through": view.through,
            "groups": view.groups,
            "kernel_sheet": view.kernel_sheet,
            "kernel_grid": view.kernel_grid.describe() if view.kernel_grid else None,
            "kernel_tiles": "the k-th input shown for channel c (positive ones first) is "
            f"tile c * {kernel_slots(view.strongest)} + k",
        }
    return entry
