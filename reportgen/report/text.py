"""Text in pages: HTML escaping and the number formats, for templates and Python alike.

The lowest module of the page renderers: render.py (the Jinja2 environment and its
filters), fragments.py and tiles.py (parts of pages made in Python) all import it, and
it imports none of them.
"""

from __future__ import annotations

import math
import numbers
import re
from typing import Any

from markupsafe import Markup

__all__ = ["breakable", "escape_text", "format_number", "format_percent", "plural"]


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


# Significant digits of every number a page shows: one format, so that numbers side by
# side read alike ("0.0900" beside "1.29", never "0.090" beside "1.4" or "2.43e-04").
SIGNIFICANT = 3


def format_number(value: Any) -> str:
    """The one way pages (and the notebook view) write a number: integers whole with
    thousands separators; other numbers to 3 significant digits in plain decimals from
    0.001 up to 1,000 ("0.0900", "1.40", "9.66", "123"), whole from there to 100,000
    ("1,234"), else in short scientific notation ("2.43e-4", "1.20e6"); NaN and None as
    an em dash."""
    if value is None:
        return "\u2014"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}"
    number = float(value)
    if math.isnan(number):
        return "\u2014"
    if math.isinf(number):
        return "\u2212\u221e" if number < 0 else "\u221e"
    if number == 0:
        return "0"
    # The exponent after rounding to 3 digits: 9.996 is "1.00e+01", written "10.0".
    mantissa, _, power = f"{number:.{SIGNIFICANT - 1}e}".partition("e")
    exponent = int(power)
    if not -3 <= exponent < 5:
        return f"{mantissa}e{exponent}"
    decimals = max(SIGNIFICANT - 1 - exponent, 0)
    return f"{number:,.{decimals}f}"


def format_percent(value: Any) -> str:
    """A fraction as a percentage with one decimal ("12.5%"); None and NaN as an em dash."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "\u2014"
    return f"{100.0 * float(value):.1f}%"


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """'1 model', '2 models', '1,024 inputs': a count with its noun, in the number's form."""
    word = noun if count == 1 else (nouns or noun + "s")
    return f"{format_number(count)} {word}"
