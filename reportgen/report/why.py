"""The "why" rows of input and class pages, made in Python: the channels that pushed a
class, each as its strongest dataset example, its name and its contribution, linking its
page (a class page lists 6 per layer, an input page 9: a Jinja macro per item would cost
more than the rest of the page)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from markupsafe import Markup

from reportgen.report.text import escape_text as esc
from reportgen.report.text import format_number
from reportgen.report.tiles import strongest_example


def signed(value: float) -> str:
    """A contribution as pages show it: with its sign, "+1.23" or "-0.456"."""
    text = format_number(value)
    return text if text.startswith(("-", "\u2212")) else f"+{text}"


def why_row(
    url: Callable[[str], str],
    layer: Any,
    up: list[tuple[int, float]],
    down: list[tuple[int, float]],
) -> Markup:
    """A layer's row of channels that pushed a class: ``up`` (framed in the accent
    colour), then ``down``; each a link to the channel's page with its strongest
    example, its name and its contribution. The example is one lazily loaded <img>, a
    tile of the layer's sheet of them where it has one (a lone tile): an input page has
    9 items for each of tens of layers, its bytes grow with the inputs, and pictures
    drawn by CSS would all load with the page."""
    items = []
    for direction, ranked in (("up", up), ("down", down)):
        for c, value in ranked:
            channel = layer.channels[c]
            alt = f"Strongest dataset example of {channel.name}"
            picture = strongest_example(url, layer, channel, alt, solo=True)
            text = f"{esc(channel.name)}\n{esc(signed(value))}"
            link = esc(url(channel.page))
            items.append(f'<a href="{link}" class="{direction}">{picture}{text}</a>\n')
    return Markup(f'<div class="why-row">\n{"".join(items)}</div>')
