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

from reportgen.report import cards
from reportgen.report.kernels import card_filter
from reportgen.report.text import escape_text as esc
from reportgen.report.text import format_number, format_percent
from reportgen.report.tiles import (
    grid_class,
    map_picture,
    solo_tile,
    strip_picture,
    strongest_example,
)

if TYPE_CHECKING:
    from reportgen.report.data import ChannelRecord, InputRecord, LayerRecord, ModelRecord
    from reportgen.report.render import StatsCells

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
    """``channel_cards`` for layer.html; ``sheet_links`` (``channel_grid`` where a
    single-file report has no sheets) and ``stats_rows`` for input_layer.html (a detail
    input at one layer)."""

    def __init__(self, stats_cells: StatsCells) -> None:
        self.links = ChannelLinks()
        self.stats_cells = stats_cells

    def _channels(self, url: Url, layer: Any, chosen: list[int]) -> Iterator[tuple[Any, str, bool]]:
        """(channel, link to its page, whether it is selected) for every channel."""
        marked = set(chosen)
        for channel, link in zip(layer.channels, self.links(url, layer)):
            yield channel, link, channel.index in marked

    def channel_cards(self, url: Url, layer: Any, filters: bool) -> Markup:
        """The layer's card grid, one card per channel: its strongest dataset example,
        its filter (``filters``: where it says something), its feature visualisation
        (where it has one), its name and its numbers over every input; each card is one
        link with its text straight in it. A folder report's spatial cards draw their
        pictures with CSS (reportgen/report/cards.py): one element a card, so a layer of
        2,048 channels stays under 3,000 elements a page; elsewhere the pictures are
        <img> elements in the link (a single-file report; a unit's one picture)."""
        items = []
        numbers_of = _map_numbers if layer.spatial else _unit_numbers
        css = cards.drawn(layer)
        for channel, link in zip(layer.channels, self.links(url, layer)):
            c, s = channel.index, channel.summary
            # name and numbers in one text, on two lines (style.css)
            numbers = f"\n{numbers_of(s)}" if s is not None else ""
            sel = " sel" if s is not None and s.selected else ""
            text = f"{esc(channel.name)}{numbers}"
            if css:
                names = cards.card_classes(layer, channel)
                items.append(
                    f'<a href="{link}" data-c="{c}" class="card {names}{sel}">{text}</a>\n'
                )
                continue
            alt = f"Strongest dataset example of {channel.name}"
            pictures = strongest_example(url, layer, channel, alt)
            if layer.spatial:
                pictures += card_filter(url, layer, channel) if filters else ""
                if layer.feature_vis_sheet and channel.feature_vis:
                    alt = f"Image optimised to excite {channel.name}"
                    grid, sheet = layer.feature_vis_grid, layer.feature_vis_sheet
                    pictures += solo_tile(url, grid, c, sheet, "fv-first", alt)
                if pictures:
                    pictures = f'<span class="pics">{pictures}</span>'
            items.append(f'<a href="{link}" data-c="{c}" class="card{sel}">{pictures}{text}</a>\n')
        if css:
            classes = cards.grid_classes(layer)
        else:
            classes = "grid cards" if layer.spatial else "grid cards units"
        if layer.spatial and layer.feature_vis_sheet:
            classes += " fv"  # wider cards: a third picture
        return Markup(f'<div class="{classes}" data-grid>\n{"".join(items)}</div>')

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

    def sheet_links(self, url: Url, layer: Any, input_id: str, chosen: list[int]) -> Markup:
        """Every channel's map on one input as the layer's sheet, one picture, under a grid
        of links, one a channel (selected ones marked): a channel costs one element, so a
        layer of 2,048 channels stays under 3,000 a page (a tile of its own costs four)."""
        grid = layer.sheet_grid
        source = esc(url(layer.sheets[input_id]))
        count = len(layer.channels)
        alt = (
            f"The maps of all {count} channels, in {grid.columns} columns: channel 0 top "
            "left, then row by row"
        )
        links = []
        for channel, link, selected in self._channels(url, layer, chosen):
            c = channel.index
            mark, said = (' class="sel"', ", selected") if selected else ("", "")
            links.append(f'<a href="{link}" data-c="{c}"{mark} aria-label="Channel {c}{said}"></a>')
        name = grid_class(grid)
        return Markup(
            f'<div class="sheet-scroll"><div class="sheet-view {name}">'
            f'<img class="sheet" src="{source}" alt="{esc(alt)}" width="{grid.width}" '
            f'height="{grid.height}" loading="lazy">\n'
            f'<div class="sheet-links {name}" data-grid data-sheet>\n{chr(10).join(links)}\n'
            "</div></div></div>"
        )

    def stats_rows(self, url: Url, layer: Any, input_id: str, chosen: list[int]) -> dict[str, Any]:
        """Every channel's statistics on one input as the rows app.js builds the page's
        table from when it is opened (thousands of rows of ten elements each would be
        most of the page): channel, link, shown name, selected (0/1), then the cells'
        texts, made by the one formatter the channel pages' tables use."""
        rows = []
        # the link unescaped: app.js sets it as an attribute, which escapes nothing
        for channel, _escaped_link, selected in self._channels(url, layer, chosen):
            name = str(channel.index) if layer.spatial else channel.name
            cells = self.stats_cells.texts(channel.stats[input_id])
            rows.append([channel.index, url(channel.page), name, int(selected), *cells])
        return {"rows": rows}


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
