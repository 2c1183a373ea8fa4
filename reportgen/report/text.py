"""Text in pages: HTML escaping and the number formats, for templates and Python alike.

The lowest module of the page renderers: render.py (the Jinja2 environment and its
filters), fragments.py and tiles.py (parts of pages made in Python) all import it, and
it imports none of them.
"""

from __future__ import annotations

import math
import re
from typing import Any

from markupsafe import Markup

__all__ = ["breakable", "escape_text", "format_number", "format_percent"]


_NAME_BREAKS = re.compile(r"([/_.-])(?=.)")


def breakable(value: Any) -> Markup:
    """A name (a file path, a layer name) escaped, with a line-break opportunity after each
    ``/``, ``_``, ``-`` and ``.``: a long name wraps between its parts, not mid-word."""
    return Markup(_NAME_BREAKS.sub(r"\1<wbr>", escape_text(value)))


def escape_text(value: Any) -> str:
    """HTML-escaped text as a plain str, with the same entities as markupsafe's escape.

    For the Python-built parts of pages (fragments.py, tiles.py): escape() returns a
    Markup object, and making a million of them costs seconds in a big report."""
    return (
        str(value)
        .replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&#34;")
        .replace("'", "&#39;")
    )


def format_number(value: Any, digits: int = 4) -> str:
    """Numbers as people read them in a table; NaN and None as an em dash."""
    if value is None:
        return "\u2014"
    if isinstance(value, int):
        return str(value)
    number = float(value)
    if math.isnan(number):
        return "\u2014"
    if number != 0 and (abs(number) >= 1e5 or abs(number) < 1e-3):
        return f"{number:.{digits - 1}e}"
    return f"{number:.{digits}g}" if abs(number) >= 1 else f"{number:.{digits}f}"


def format_percent(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "\u2014"
    return f"{100.0 * float(value):.1f}%"
