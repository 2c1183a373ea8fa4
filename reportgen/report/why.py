"""The "why" items of input and class pages, made in Python: a channel that pushed a
class, as its strongest dataset example, its name and its contribution, linking its
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


def channel_items(
    url: Callable[[str], str], layer: Any, ranked: list[tuple[int, float]], direction: str
) -> Markup:
    """One ``<li>`` per (channel, contribution) of ``ranked``; ``direction``: "up" (it
    pushed the class up) or "down" (the class for which the list is made)."""
    items = []
    for c, value in ranked:
        channel = layer.channels[c]
        alt = f"Strongest dataset example of {channel.name}"
        picture = strongest_example(url, layer, channel, alt)
        items.append(
            f'<li class="{direction}"><a href="{esc(url(channel.page))}">{picture}'
            f'<span class="about">{esc(channel.name)}\n{esc(signed(value))}</span></a></li>\n'
        )
    return Markup("".join(items))
