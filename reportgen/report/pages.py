"""Every page of the report: which template, which data, which neighbours.

Data is complete before the first page is rendered; each page links relatively
from its own location.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import jinja2

from reportgen.report import paths
from reportgen.report.data import LayerRecord, ModelRecord, ReportData
from reportgen.report.render import Linker
from reportgen.report.tiles import report_grids


@dataclass(frozen=True)
class Link:
    title: str
    path: str


@dataclass
class Page:
    path: str
    template: str
    title: str
    crumbs: list[Link]
    up: Link | None = None
    prev: Link | None = None
    next: Link | None = None
    context: dict[str, Any] = field(default_factory=dict)


def _neighbours(items: list[Link], index: int) -> tuple[Link | None, Link | None]:
    prev = items[index - 1] if index > 0 else None
    nxt = items[index + 1] if index + 1 < len(items) else None
    return prev, nxt


def plan_pages(data: ReportData) -> Iterator[Page]:
    """All pages in a stable order; channel pages are produced lazily (there can be many)."""
    home = Link("Report", paths.INDEX)
    yield Page(paths.INDEX, "index.html", data.title, [home])
    if data.comparisons:
        comparison = Link("Model comparison", data.comparison_page)
        yield Page(
            data.comparison_page, "comparison.html", "Model comparison", [home, comparison], home
        )
    model_links = [Link(m.name if m.id == m.name else m.id, m.page) for m in data.models]
    for m_index, model in enumerate(data.models):
        model_link = model_links[m_index]
        prev, nxt = _neighbours(model_links, m_index)
        yield Page(
            model.page,
            "model.html",
            f"{model_link.title}",
            [home, model_link],
            home,
            prev,
            nxt,
            {"model": model},
        )
        compare = Link("Layer comparison", model.compare_page)
        yield Page(
            model.compare_page,
            "compare.html",
            f"{model_link.title}: layer comparison",
            [home, model_link, compare],
            model_link,
            None,
            None,
            {"model": model},
        )
        layer_links = [Link(layer.name, layer.page) for layer in model.layers]
        for l_index, layer in enumerate(model.layers):
            layer_link = layer_links[l_index]
            prev, nxt = _neighbours(layer_links, l_index)
            yield Page(
                layer.page,
                "layer.html",
                f"{model_link.title} \u203a {layer.name}",
                [home, model_link, layer_link],
                model_link,
                prev,
                nxt,
                {"model": model, "layer": layer},
            )
            yield from _channel_pages(home, model_link, layer_link, model, layer)


def _channel_pages(
    home: Link, model_link: Link, layer_link: Link, model: ModelRecord, layer: LayerRecord
) -> Iterator[Page]:
    links = [Link(f"channel {c.index}", c.page) for c in layer.channels]
    for index, channel in enumerate(layer.channels):
        prev, nxt = _neighbours(links, index)
        selected_for = [i for i, chosen in layer.selected.items() if channel.index in chosen]
        yield Page(
            channel.page,
            "channel.html",
            f"{model_link.title} \u203a {layer.name} \u203a channel {channel.index}",
            [home, model_link, layer_link, links[index]],
            layer_link,
            prev,
            nxt,
            {"model": model, "layer": layer, "channel": channel, "selected_for": selected_for},
        )


def render_pages(
    data: ReportData,
    env: jinja2.Environment,
    write: Any,
    csp: str,
    linker: Callable[[str], Linker] = Linker,
    share: tuple[int, int] | None = None,
) -> int:
    """Render every page and hand it to ``write(path, text)``; returns the page count.

    ``linker(page_path)`` makes each page's ``url`` helper: relative links by default,
    anchors and data: URIs for a single-file report. ``share=(k, n)``: only every n-th
    page from the k-th (n processes render a report together).
    """
    inputs = {record.id: record for record in data.inputs}
    tiles_stylesheet = bool(report_grids(data))
    count = 0
    templates: dict[str, jinja2.Template] = {}
    for index, page in enumerate(plan_pages(data)):
        if share is not None and index % share[1] != share[0]:
            continue
        template = templates.get(page.template)
        if template is None:
            template = templates[page.template] = env.get_template(page.template)
        text = template.render(
            report=data,
            inputs=inputs,
            page=page,
            url=linker(page.path),
            csp=csp,
            tiles_stylesheet=tiles_stylesheet,
            **page.context,
        )
        write(page.path, text)
        count += 1
    return count
