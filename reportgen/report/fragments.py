"""The parts of pages that repeat once per channel and input, made in Python.

A layer page shows, for every input, a grid with every channel's map and a table with
every channel's statistics; a channel page shows, for every input, a statistics row and
the map beside the overlay. That is thousands of items per input for four AlexNet
layers, millions in a big report. As Jinja loops (a loop turn, a filter or a macro call
costs microseconds to tens of microseconds) they were most of the time spent writing
pages; here they are plain string building, with every shown text escaped. The
templates call these where the loops were, with the same markup.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from markupsafe import Markup

from reportgen.report.kernels import card_filter
from reportgen.report.text import escape_text as esc
from reportgen.report.text import format_number, format_percent
from reportgen.report.tiles import example_first, map_picture, solo_tile, strip_picture

if TYPE_CHECKING:
    from reportgen.report.data import ChannelRecord, InputRecord, LayerRecord, ModelRecord

Url = Callable[[str], str]


class ChannelLinks:
    """Each channel's page link from one page, computed once per page and layer."""

    def __init__(self) -> None:
        self._page: Any = None
        self._links: dict[int, list[str]] = {}

    def __call__(self, url: Url, layer: Any) -> list[str]:
        if url is not self._page:  # a new page: links are relative to it
            self._page, self._links = url, {}
        links = self._links.get(id(layer))
        if links is None:
            links = self._links[id(layer)] = [esc(url(c.page)) for c in layer.channels]
        return links


class LayerFragments:
    """``channel_cards`` for layer.html; ``channel_grid`` and ``channel_stats_rows`` for
    input_layer.html (a detail input at one layer)."""

    def __init__(self, stats_cells: Callable[[dict[str, Any]], Markup]) -> None:
        self.links = ChannelLinks()
        self.stats_cells = stats_cells

    def _channels(self, url: Url, layer: Any, chosen: list[int]) -> Iterator[tuple[Any, str, bool]]:
        """(channel, link to its page, whether it is selected) for every channel."""
        marked = set(chosen)
        for channel, link in zip(layer.channels, self.links(url, layer)):
            yield channel, link, channel.index in marked

    def channel_cards(self, url: Url, layer: Any, filters: bool) -> Markup:
        """One card per channel: its strongest dataset example, its filter (``filters``:
        where it says something) and its numbers over every input; one link each."""
        items = []
        numbers_of = _map_numbers if layer.spatial else _unit_numbers
        for channel, link in zip(layer.channels, self.links(url, layer)):
            c, s = channel.index, channel.summary
            example = ""
            first = channel.examples_image or (channel.example_views or [None])[0]
            if channel.examples_sheet:
                alt = f"Strongest dataset example of {channel.name}"
                example = example_first(url, layer, channel, alt)
            elif first:
                example = (
                    f'<img class="example-first" src="{esc(url(first))}" '
                    f'alt="Strongest dataset example of {esc(channel.name)}" width="64" '
                    'height="64" loading="lazy">'
                )
            kernel = card_filter(url, layer, channel) if filters else ""
            if layer.feature_vis_sheet and channel.feature_vis:
                alt = f"Image optimised to excite {channel.name}"
                grid, sheet = layer.feature_vis_grid, layer.feature_vis_sheet
                kernel += solo_tile(url, grid, channel.index, sheet, "fv-first", alt)
            mark = ' class="card sel"' if s is not None and s.selected else ' class="card"'
            # name and numbers in one element, on two lines (style.css): a layer of 512
            # channels stays under 3,000 elements a page
            numbers = f"\n{numbers_of(s)}" if s is not None else ""
            items.append(
                f'<li data-c="{c}"{mark}><a href="{link}">{example}{kernel}'
                f'<span class="about">{esc(channel.name)}{numbers}</span></a></li>\n'
            )
        return Markup("".join(items))

    def channel_grid(self, url: Url, layer: Any, input_id: str, chosen: list[int]) -> Markup:
        """Every channel's map on one input, selected ones marked, as <li> items."""
        items = []
        for channel, link, selected in self._channels(url, layer, chosen):
            c = channel.index
            alt = f"Channel {c} (selected)" if selected else f"Channel {c}"
            picture = map_picture(url, layer, channel, input_id, "map", alt, size=64)
            mark = ' class="sel"' if selected else ""
            dot = "&#9679; " if selected else ""
            items.append(
                f'<li data-c="{c}"{mark}><a href="{link}">{picture}'
                f'<span aria-hidden="true">{dot}{c}</span></a></li>\n'
            )
        return Markup("".join(items))

    def channel_stats_rows(self, url: Url, layer: Any, input_id: str, chosen: list[int]) -> Markup:
        """One table row per channel: its statistics on one input."""
        rows = []
        for channel, link, selected in self._channels(url, layer, chosen):
            c = channel.index
            name = str(c) if layer.spatial else esc(channel.name)
            cells = self.stats_cells(channel.stats[input_id])
            if selected:
                rows.append(
                    f'<tr data-c="{c}" class="sel"><th scope="row"><a href="{link}">'
                    f'<span aria-hidden="true">&#9679; </span>{name}</a>'
                    f'<span class="vh"> (selected)</span></th>{cells}</tr>\n'
                )
            else:
                head = f'<th scope="row"><a href="{link}">{name}</a></th>'
                rows.append(f'<tr data-c="{c}">{head}{cells}</tr>\n')
        return Markup("".join(rows))


def _map_numbers(s: Any) -> str:
    return (
        f"mean {esc(format_number(s.mean))}, max {esc(format_number(s.max))}, "
        f"{esc(_percent(s.sparsity))} &le;&nbsp;0; selected by {s.selected}"
    )


def _unit_numbers(s: Any) -> str:
    """A unit has one value per input: its mean and highest value, and its rank."""
    return (
        f"mean {esc(format_number(s.mean))}, highest {esc(format_number(s.max))}; "
        f"best rank {s.best_rank}, first on {s.first}"
    )


def _percent(value: Any) -> str:
    return format_percent(value)


def value_range(low: Any, high: Any) -> str:
    """Same markup as the ``value_range`` macro in macros.html."""
    return (
        f'<span class="range">{esc(format_number(low))} &hellip; {esc(format_number(high))}</span>'
    )


class ChannelFragments:
    """``input_stats_rows`` and ``input_figures`` for channel.html."""

    def __init__(self, stats_cells: Callable[[dict[str, Any]], Markup]) -> None:
        self.stats_cells = stats_cells

    def input_stats_rows(
        self, layer: Any, channel: Any, inputs: dict[str, Any], selected_for: list[str]
    ) -> Markup:
        """One table row per input: this channel's statistics on it."""
        marked = set(selected_for)
        rows = []
        for input_id, stats in channel.stats.items():
            source = esc(inputs[input_id].source)
            name = f'<a href="#in-{esc(input_id)}">{source}</a>' if layer.spatial else source
            mark = ' class="sel"' if input_id in marked else ""
            rows.append(f'<tr{mark}><th scope="row">{name}</th>{self.stats_cells(stats)}</tr>\n')
        return Markup("".join(rows))

    def input_figures(
        self,
        url: Url,
        model: ModelRecord,
        layer: LayerRecord,
        channel: ChannelRecord,
        inputs: dict[str, InputRecord],
        selected_for: list[str],
        alpha_class: str,
        by_layer: bool,
    ) -> Markup:
        """Per input: the map, and the map over the network's view (the browser blends
        them; the opacity slider changes ``alpha_class``), with the value range."""
        marked = set(selected_for)
        c = channel.index
        sized = ' width="{}" height="{}"'.format(*model.view_size)
        figures = []
        for input_id in layer.detail_pages:
            source = inputs[input_id].source
            selected = input_id in marked
            # the figure's caption names the input: the pictures' alt texts do not repeat it
            alt = f"Map of channel {c}"
            shown = strip_picture(url, model.id, layer, channel, input_id, "map big", alt)
            over = strip_picture(
                url, model.id, layer, channel, input_id, "map-over", f"Channel {c} laid over it"
            )
            view = esc(url(model.views[input_id]))
            if by_layer:
                low, high = layer.ranges[input_id]
            else:
                stats = channel.stats[input_id]
                low, high = stats["min"], stats["max"]
            saved = ""
            if input_id in channel.overlays:
                link = esc(url(channel.overlays[input_id]))
                saved = f'; <a href="{link}">saved overlay (JPEG)</a>'
            tag = '<strong class="sel-tag">selected</strong> ' if selected else ""
            mark = " sel" if selected else ""
            figures.append(
                f'<figure class="detail{mark}" id="in-{esc(input_id)}">\n'
                f'<div class="pair">\n{shown}\n'
                f'<span class="stack {esc(alpha_class)}"><img class="view" src="{view}" '
                f'alt="The network\'s view"{sized} loading="lazy">{over}</span>\n</div>\n'
                f"<figcaption>{tag}{esc(source)}: range {value_range(low, high)}{saved}"
                "</figcaption>\n</figure>\n"
            )
        return Markup("".join(figures))
