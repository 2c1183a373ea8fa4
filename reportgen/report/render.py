"""The Jinja2 environment and the one helper that turns a report path into a link."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import jinja2
from markupsafe import Markup

from reportgen.report import why
from reportgen.report.paths import relative

# The text helpers live in reportgen.report.text (below this module, fragments.py and
# tiles.py: no import circle); imported here for the filters and for older imports.
from reportgen.report.text import breakable, escape_text, format_number, format_percent, plural
from reportgen.settings import command_line, typed_options
from reportgen.statistics import Statistic, offered_over_inputs, statistics

__all__ = [
    "Inliner",
    "Linker",
    "StatsCells",
    "escape_text",
    "format_number",
    "format_percent",
    "make_environment",
    "templates_dir",
]


def templates_dir() -> Path:
    """Installed wheels carry reportgen/templates; a source checkout has ./templates."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "templates", package.parent / "templates"):
        if (candidate / "base.html").is_file():
            return candidate
    raise FileNotFoundError("reportgen's templates are missing from this installation")


def make_environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        # Every template is escaped, whatever its name: inputs' file names can hold HTML.
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    # |tojson (the layer pages' channel tables, tens of thousands of numbers) without spaces
    env.policies["json.dumps_kwargs"] = {"sort_keys": True, "separators": (",", ":")}
    env.filters["num"] = format_number
    env.filters["pct"] = format_percent
    env.filters["breakable"] = breakable
    env.filters["plural"] = plural
    env.globals["typed_options"] = typed_options
    env.globals["command_line"] = command_line
    # The statistics (reportgen.statistics): tables, tools and charts loop over them
    env.globals["statistics"] = statistics
    env.globals["offered_over_inputs"] = offered_over_inputs
    env.filters["shown"] = shown
    from reportgen.report.rebuild import rebuild

    env.globals["rebuild"] = rebuild
    from reportgen.imaging.pictures import thumbnail_size

    env.globals["thumbnail_size"] = thumbnail_size
    from reportgen.report import summary

    env.globals["channel_table"] = summary.channel_table
    env.globals["summary_table"] = summary.summary_table
    env.globals["statistic_options"] = summary.statistic_options
    env.globals["summary_options"] = summary.summary_options
    env.globals["top_units"] = summary.top_units
    env.globals["most_selected"] = summary.most_selected
    env.globals["histogram_bars"] = summary.histogram_bars
    env.globals["summary_chart"] = summary.summary_chart
    env.globals["stats_cells"] = stats_cells = StatsCells()
    from reportgen.report.fragments import ChannelFragments, LayerFragments
    from reportgen.report.tiles import compare_picture, example_strip, map_picture

    env.globals["map_picture"] = map_picture
    env.globals["compare_picture"] = compare_picture
    env.globals["example_strip"] = example_strip
    env.globals["why_row"], env.filters["signed"] = why.why_row, why.signed
    from reportgen.report.kernels import filter_picture, weights_note, weights_view

    env.globals["filter_picture"] = filter_picture
    env.globals["weights_view"] = weights_view
    env.globals["weights_note"] = weights_note
    fragments = LayerFragments(stats_cells)
    for name in ("channel_grid", "channel_cards", "sheet_links", "stats_rows"):
        env.globals[name] = getattr(fragments, name)
    per_input = ChannelFragments(stats_cells)
    env.globals["input_stats_rows"] = per_input.input_stats_rows
    env.globals["input_figures"] = per_input.input_figures
    return env


class Inliner(Protocol):
    """What a single-file report links through (see reportgen.report.singlefile)."""

    def anchor(self, page: str, fragment: str) -> str | None: ...

    def data_uri(self, path: str) -> str: ...


class Linker:
    """Links from one page: the single place that decides how a file is referenced.

    In a folder report every link is a relative path. In a single-file report
    (``inline`` given) a link to a page becomes an in-page anchor, and any other
    file (image, stylesheet, script) a ``data:`` URI, so nothing is outside.
    """

    def __init__(self, page: str, inline: Inliner | None = None) -> None:
        self.page = page
        self.inline = inline

    def __call__(self, target: str) -> str:
        if self.inline is None:
            return relative(target, self.page)
        path, _, fragment = target.partition("#")
        anchor = self.inline.anchor(path or self.page, fragment)
        return anchor if anchor is not None else self.inline.data_uri(path)


def shown(value: Any, stat: Statistic) -> str:
    """A statistic's value as pages show it (its ``display``), not yet escaped."""
    return format_percent(value) if stat.display == "percent" else format_number(value)


class StatsCells:
    """The table cells of one channel's statistics on one input, as HTML.

    The same cells appear on the layer page and on the channel page, thousands of times
    in a big report: made once per statistics dictionary, in Python (a Jinja macro call
    costs tens of microseconds). ``stats_head`` in macros.html heads their columns.
    """

    def __init__(self) -> None:
        self._made: dict[int, tuple[Any, Markup]] = {}

    def __call__(self, s: dict[str, Any]) -> Markup:
        made = self._made.get(id(s))
        if made is not None and made[0] is s:
            return made[1]
        html = Markup("".join(f"<td>{escape_text(text)}</td>" for text in self.texts(s)))
        self._made[id(s)] = (s, html)
        return html

    @staticmethod
    def texts(s: dict[str, Any]) -> list[str]:
        """The cells' texts, not yet escaped: also what app.js builds a wide layer's
        table from (reportgen.report.fragments.stats_rows), so both read the same."""
        if "rank" in s:  # a unit: one value per input, and its rank in the layer
            return [format_number(s["value"]), str(s["rank"])]
        where = s["argmax"]
        yx, xy = where["map_yx"], where["view_xy"]
        return [
            *(shown(s[stat.name], stat) for stat in statistics()),
            f"({yx[0]}, {yx[1]})",
            f"({xy[0]}, {xy[1]})",
        ]
