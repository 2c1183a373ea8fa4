"""Every page of the report: which template, which data, which neighbours.

Data is complete before the first page is rendered; each page links relatively
from its own location.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import jinja2
from markupsafe import Markup

from reportgen.report import paths
from reportgen.report.data import LayerRecord, ModelRecord, ReportData
from reportgen.report.render import Linker


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


# Inputs per page of a gallery (the index's and each model's): pages stay small however
# many inputs a run has; plain links lead from one gallery page to the next.
GALLERY_SIZE = 48


@dataclass(frozen=True)
class Gallery:
    """One page of an inputs gallery: its inputs, and links to every page of it."""

    number: int
    inputs: list[str]  # input ids on this page
    pages: list[Link]  # every page of the gallery, in order
    total: int  # inputs in the whole gallery

    @property
    def first(self) -> int:
        return (self.number - 1) * GALLERY_SIZE + 1


def galleries(
    model_id: str | None, input_ids: list[str], page_of: Callable[[int], str] | None = None
) -> list[Gallery]:
    """The pages of a gallery of ``input_ids`` (the report's: ``model_id`` None);
    ``page_of(number)``: where page ``number`` is (default: ``paths.gallery_page``)."""
    chunks = [input_ids[i : i + GALLERY_SIZE] for i in range(0, len(input_ids), GALLERY_SIZE)]
    chunks = chunks or [[]]
    links = [
        Link(
            f"{i * GALLERY_SIZE + 1}\u2013{i * GALLERY_SIZE + len(chunk)}",
            page_of(i + 1) if page_of else paths.gallery_page(model_id, i + 1),
        )
        for i, chunk in enumerate(chunks)
    ]
    return [Gallery(i + 1, chunk, links, len(input_ids)) for i, chunk in enumerate(chunks)]


# Detail inputs per page of a model's layer comparison: each shows a small picture per
# input (reportgen.report.strips), so a page pulls a bounded number of them.
COMPARE_SIZE = 4  # and under 3,000 elements a page (20 layers x 4 maps each)


def compare_galleries(model: ModelRecord) -> list[Gallery]:
    """The pages of a model's layer comparison: its detail inputs, COMPARE_SIZE a page;
    the first is ``model.compare_page``, then ``compare-2.html``..."""
    detail = [i for i in model.views if any(i in x.detail_pages for x in model.layers)]
    chunks = [detail[i : i + COMPARE_SIZE] for i in range(0, len(detail), COMPARE_SIZE)]
    chunks = chunks or [[]]
    stem = model.compare_page.removesuffix(".html")
    links = [
        Link(
            f"{i * COMPARE_SIZE + 1}\u2013{i * COMPARE_SIZE + len(chunk)}",
            model.compare_page if i == 0 else f"{stem}-{i + 1}.html",
        )
        for i, chunk in enumerate(chunks)
    ]
    return [Gallery(i + 1, chunk, links, len(detail)) for i, chunk in enumerate(chunks)]


def plan_pages(data: ReportData) -> Iterator[Page]:
    """All pages in a stable order; per-channel and per-input pages are produced lazily
    (there can be many)."""
    home = Link("Report", paths.INDEX)
    report_galleries = galleries(None, [i.id for i in data.inputs])
    yield Page(
        paths.INDEX, "index.html", data.title, [home], context={"gallery": report_galleries[0]}
    )
    for gallery in report_galleries[1:]:
        link = Link(
            f"Inputs {gallery.pages[gallery.number - 1].title}",
            gallery.pages[gallery.number - 1].path,
        )
        yield Page(
            link.path,
            "gallery.html",
            link.title,
            [home, link],
            home,
            context={"gallery": gallery, "model": None},
        )
    if data.comparisons:
        comparison = Link("Model comparison", data.comparison_page)
        yield Page(
            data.comparison_page, "comparison.html", "Model comparison", [home, comparison], home
        )
    model_links = [Link(m.name if m.id == m.name else m.id, m.page) for m in data.models]
    for m_index, model in enumerate(data.models):
        yield from _model_pages(data, home, model_links, m_index, model)


def _model_pages(
    data: ReportData, home: Link, model_links: list[Link], m_index: int, model: ModelRecord
) -> Iterator[Page]:
    model_link = model_links[m_index]
    prev, nxt = _neighbours(model_links, m_index)
    model_galleries = galleries(model.id, list(model.views))
    yield Page(
        model.page,
        "model.html",
        f"{model_link.title}",
        [home, model_link],
        home,
        prev,
        nxt,
        {"model": model, "gallery": model_galleries[0]},
    )
    for gallery in model_galleries[1:]:
        here = gallery.pages[gallery.number - 1]
        link = Link(f"Inputs {here.title}", here.path)
        yield Page(
            link.path,
            "gallery.html",
            f"{model_link.title}: inputs {here.title}",
            [home, model_link, link],
            model_link,
            context={"gallery": gallery, "model": model},
        )
    yield from _compare_pages(home, model_link, model)
    yield from _class_pages(home, model_link, model)
    yield from _input_pages(data, home, model_link, model)
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
        yield from _input_layer_pages(data, home, model_link, layer_link, model, layer)
        yield from _channel_pages(home, model_link, layer_link, model, layer)


def _compare_pages(home: Link, model_link: Link, model: ModelRecord) -> Iterator[Page]:
    """The model's layer comparison, paged over its detail inputs."""
    compare = Link("Layer comparison", model.compare_page)
    for gallery in compare_galleries(model):
        here = gallery.pages[gallery.number - 1]
        crumbs = [home, model_link, compare]
        title = f"{model_link.title}: layer comparison"
        if gallery.number > 1:
            crumbs.append(Link(f"Inputs {here.title}", here.path))
            title += f", inputs {here.title}"
        yield Page(
            here.path,
            "compare.html",
            title,
            crumbs,
            model_link,
            None,
            None,
            {"model": model, "gallery": gallery},
        )


def _class_pages(home: Link, model_link: Link, model: ModelRecord) -> Iterator[Page]:
    """The classes index, then each class's page (its inputs paged as a gallery, highest
    probability first), chained previous/next in class order."""
    if not model.classes_page:
        return
    index = Link("Classes", model.classes_page)
    yield Page(
        model.classes_page,
        "classes.html",
        f"{model_link.title}: classes",
        [home, model_link, index],
        model_link,
        context={
            "model": model,
            "ordered": sorted(model.classes, key=lambda c: (-len(c.inputs), c.index)),
        },
    )
    links = [Link(f"class {c.index}: {c.label}", c.page) for c in model.classes]
    for number, record in enumerate(model.classes):
        prev, nxt = _neighbours(links, number)
        here = links[number]
        page_of = partial(paths.class_page, model.id, record.index)
        pages = galleries(model.id, record.inputs, page_of)
        for gallery in pages:
            crumbs = [home, model_link, index, here]
            title = f"{model_link.title} \u203a {here.title}"
            if gallery.number > 1:
                link = gallery.pages[gallery.number - 1]
                crumbs.append(Link(f"Inputs {link.title}", link.path))
                title += f": inputs {link.title}"
            yield Page(
                gallery.pages[gallery.number - 1].path,
                "class.html",
                title,
                crumbs,
                index,
                prev if gallery.number == 1 else None,
                nxt if gallery.number == 1 else None,
                {"model": model, "klass": record, "gallery": gallery},
            )


def _per_input_pages(
    data: ReportData,
    pages: dict[str, str],
    template: str,
    crumbs: list[Link],
    context: dict[str, Any],
) -> Iterator[Page]:
    """A page per input in ``pages`` (input id -> path), each a step below the last of
    ``crumbs``, chained previous/next in input order."""
    sources = {i.id: i.source for i in data.inputs}
    links = [Link(sources[i], page) for i, page in pages.items()]
    parent = crumbs[-1]
    for index, input_id in enumerate(pages):
        prev, nxt = _neighbours(links, index)
        yield Page(
            links[index].path,
            template,
            " \u203a ".join([*(c.title for c in crumbs[1:]), sources[input_id]]),
            [*crumbs, links[index]],
            parent,
            prev,
            nxt,
            {**context, "input_id": input_id},
        )


def _input_pages(
    data: ReportData, home: Link, model_link: Link, model: ModelRecord
) -> Iterator[Page]:
    return _per_input_pages(
        data, model.input_pages, "input.html", [home, model_link], {"model": model}
    )


def _input_layer_pages(
    data: ReportData,
    home: Link,
    model_link: Link,
    layer_link: Link,
    model: ModelRecord,
    layer: LayerRecord,
) -> Iterator[Page]:
    return _per_input_pages(
        data,
        layer.detail_pages,
        "input_layer.html",
        [home, model_link, layer_link],
        {"model": model, "layer": layer},
    )


def _channel_pages(
    home: Link, model_link: Link, layer_link: Link, model: ModelRecord, layer: LayerRecord
) -> Iterator[Page]:
    links = [Link(c.name, c.page) for c in layer.channels]
    for index, channel in enumerate(layer.channels):
        prev, nxt = _neighbours(links, index)
        detail_selected_for = [
            i for i in layer.detail_pages if channel.index in layer.selected.get(i, ())
        ]
        yield Page(
            channel.page,
            "channel.html",
            f"{model_link.title} \u203a {layer.name} \u203a {channel.name}",
            [home, model_link, layer_link, links[index]],
            layer_link,
            prev,
            nxt,
            {
                "model": model,
                "layer": layer,
                "channel": channel,
                "detail_selected_for": detail_selected_for,
            },
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
            # reportgen's own policy, not shown text: its quotes stay quotes (shorter).
            csp=Markup(csp),
            **page.context,
        )
        write(page.path, text)
        count += 1
    return count
