"""A spatial layer's cards with their pictures drawn by CSS: one element a channel.

A layer page shows one card per channel: its strongest dataset example, its filter
(where the layer's cards show one) and its feature visualisation (where it has one),
its name and its numbers, linking its page. Pictures as elements cost one to four
elements a card, and a page of 2,048 channels must stay under 3,000 elements. So in a
folder report a card is its link alone, ``<a class="card ex vis pcC prR" href data-c>``
with the text straight in it, and its pictures are the backgrounds of its ``::before``
(the example) and ``::after`` (the filter and/or the feature visualisation) boxes,
each a tile of one of the layer's sheets: the strongest examples' sheet
(``example_first_sheet``), the filter sheet and the feature-visualisation sheet. The
three grids share their columns and rows (``SheetGrid.for_layer`` of the layer's
channels), so a card carries its cell once: ``pcC`` and ``prR`` set ``--c`` and ``--r``,
and one rule per layer and picture computes each sheet's offset from them. Examples
that are whole network views (late layers) are a rule per view, shared by its cards.

The rules are written after style.css's own in ``assets/style.css`` (the pages'
Content-Security-Policy allows no inline style), so every ``url()`` is relative to
``assets/``. A single-file report has no sheets: its cards keep the pictures as <img>
elements in the link (``fallback``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from reportgen.imaging.sheets import SheetGrid

# Display sizes on a card, CSS pixels (style.css lays the boxes out)
EXAMPLE_SIZE = 64
FILTER_SIZE = 32
FV_SIZE = 64
# Between the filter and the feature visualisation in a card's ::after box
FILTER_GAP = 4


def _short(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:10]


def layer_class(layer: Any) -> str:
    """The class of a layer's card grid, which its sheets' rules hang on."""
    return f"k{_short(layer.page)}"


def view_class(view: str) -> str:
    """The class of the cards whose strongest example is this network view."""
    return f"x{_short(view)}"


def css_url(path: str) -> str:
    """A report file as a url() of ``assets/style.css``."""
    escaped = path.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\a ")
    return f'url("../{escaped}")'


def example_view(layer: Any, channel: Any) -> str | None:
    """The view a card shows as its strongest example when it has no sheet of them."""
    if channel.examples_sheet or channel.examples_image:
        return None
    return (channel.example_views or [None])[0]


def drawn(layer: Any) -> bool:
    """Whether a spatial layer's cards draw their pictures with CSS: every picture they
    show is a tile of a sheet or a shared network view (a folder report)."""
    if not layer.spatial:
        return False
    if len({(g.columns, g.rows) for g in _layer_grids(layer)}) > 1:
        return False  # the sheets' cells differ: no one cell a card
    if layer.cards_filter and not (
        layer.filter_grid and layer.filter_sheets.get(filter_part(layer))
    ):
        return False
    if any(c.feature_vis for c in layer.channels) and layer.feature_vis_sheet is None:
        return False
    for channel in layer.channels:
        if channel.examples_sheet and layer.example_first_sheet is None:
            return False
        if not channel.examples_sheet and channel.examples_image:
            return False
    return True


def filter_part(layer: Any) -> str:
    return "rgb" if layer.filter_rgb else "mean"


def card_classes(layer: Any, channel: Any) -> str:
    """A drawn card's picture classes: ``ex`` (a tile of the examples' sheet) or a view's
    class, ``vis`` (a feature visualisation), and its cell in the layer's sheets."""
    names = []
    if channel.examples_sheet:
        names.append("ex")
    else:
        view = example_view(layer, channel)
        if view:
            names.append(view_class(view))
    if channel.feature_vis and layer.feature_vis_sheet:
        names.append("vis")
    grid = _grid(layer)
    if grid is not None:
        column, row = grid.cell(channel.index)
        names += [f"pc{column}", f"pr{row}"]
    return " ".join(names)


def grid_classes(layer: Any) -> str:
    """The classes of a drawn layer's card grid: ``fi`` when its cards show filters."""
    fi = " fi" if layer.cards_filter else ""
    return f"grid cards drawn {layer_class(layer)}{fi}"


def _grid(layer: Any) -> SheetGrid | None:
    for grid in (layer.example_first_grid, layer.filter_grid, layer.feature_vis_grid):
        if grid is not None:
            return grid
    return None


def _layer_grids(layer: Any) -> list[SheetGrid]:
    grids = [layer.example_first_grid, layer.feature_vis_grid]
    if layer.cards_filter:
        grids.append(layer.filter_grid)
    return [g for g in grids if g is not None]


def _number(value: float) -> str:
    return f"{value:.6f}".rstrip("0").rstrip(".") or "0"


def _tile_background(grid: SheetGrid, width: int, height: int) -> tuple[str, str]:
    """(background-size, background-position) showing the tile of cell (--c, --r) of
    ``grid`` in a box ``width`` x ``height``: the sheet scaled so that one tile fills
    the box, moved left and up by the cell's first pixel."""
    sx, sy = width / grid.tile_width, height / grid.tile_height
    size = f"{_number(grid.width * sx)}px {_number(grid.height * sy)}px"

    def offset(var: str, step: float, pad: float) -> str:
        shift = f" - {_number(pad)}px" if pad else ""
        return f"calc(var({var}) * -{_number(step)}px{shift})"

    x = offset("--c", grid.cell_width * sx, grid.pad * sx)
    y = offset("--r", grid.cell_height * sy, grid.pad * sy)
    return size, f"{x} {y}"


def layer_rules(layer: Any) -> list[str]:
    """The rules of one drawn layer's cards: each picture's sheet, size and offset."""
    name = f".{layer_class(layer)}"
    rules = []
    if layer.example_first_sheet and layer.example_first_grid is not None:
        size, position = _tile_background(layer.example_first_grid, EXAMPLE_SIZE, EXAMPLE_SIZE)
        rules.append(
            f"{name} > a.ex::before {{ background-image: {css_url(layer.example_first_sheet)}; "
            f"background-size: {size}; background-position: {position}; }}"
        )
    filters = None
    if layer.cards_filter and layer.filter_grid is not None:
        sheet = layer.filter_sheets.get(filter_part(layer))
        if sheet:
            filters = (
                css_url(sheet),
                *_tile_background(layer.filter_grid, FILTER_SIZE, FILTER_SIZE),
            )
    vis = None
    if layer.feature_vis_sheet and layer.feature_vis_grid is not None:
        vis = (
            css_url(layer.feature_vis_sheet),
            *_tile_background(layer.feature_vis_grid, FV_SIZE, FV_SIZE),
        )
    if filters:
        url, size, position = filters
        rules.append(
            f"{name} > a.card::after {{ background-image: {url}; background-size: {size}; "
            f"background-position: {position}; }}"
        )
    if vis and not filters:
        url, size, position = vis
        rules.append(
            f"{name} > a.vis::after {{ background-image: {url}; background-size: {size}; "
            f"background-position: {position}; }}"
        )
    if vis and filters:
        # One box, both pictures (style.css): the visualisation in the content box; the
        # filter in the left border, under two covers of the card's colour (the gap
        # beside it and the space below it), which hide the filter sheet's other tiles.
        v_url, v_size, v_position = vis
        f_url, f_size, f_position = filters
        cover = "linear-gradient(var(--card-bg), var(--card-bg))"
        rules.append(
            f"{name} > a.vis::after {{ "
            f"background-image: {v_url}, {cover}, {cover}, {f_url}; "
            f"background-origin: content-box, border-box, border-box, border-box; "
            f"background-clip: content-box, border-box, border-box, border-box; "
            f"background-size: {v_size}, {FILTER_GAP}px {FILTER_SIZE}px, "
            f"{FILTER_SIZE + FILTER_GAP}px {FV_SIZE - FILTER_SIZE}px, {f_size}; "
            f"background-position: {v_position}, {FILTER_SIZE}px 0, 0 {FILTER_SIZE}px, "
            f"{f_position}; }}"
        )
    return rules


def view_rule(view: str) -> str:
    """A view shown whole as a card's example, as an <img> of it would be (object-fit:
    cover, from the top left)."""
    return (
        f".{view_class(view)}::before {{ background-image: {css_url(view)}; "
        "background-size: cover; }"
    )


def drawn_layers(data: Any) -> Iterable[Any]:
    for model in data.models:
        for layer in model.layers:
            if drawn(layer):
                yield layer


def stylesheet(data: Any) -> str:
    """Every drawn layer's rules, its views' and the cells' (``--c``, ``--r``), in a
    stable order; "" when no layer draws its cards."""
    layers = list(drawn_layers(data))
    if not layers:
        return ""
    columns = rows = 0
    views: set[str] = set()
    lines = [
        "/* reportgen: the pictures of layer pages' cards, tiles of the layers' sheets "
        "(reportgen/report/cards.py); the boxes are laid out in style.css */",
    ]
    for layer in layers:
        for grid in _layer_grids(layer):
            columns, rows = max(columns, grid.columns), max(rows, grid.rows)
        for channel in layer.channels:
            view = None if channel.examples_sheet else example_view(layer, channel)
            if view:
                views.add(view)
        lines.extend(layer_rules(layer))
    lines += [view_rule(view) for view in sorted(views)]
    lines += [f".pc{c} {{ --c: {c}; }}" for c in range(columns)]
    lines += [f".pr{r} {{ --r: {r}; }}" for r in range(rows)]
    return "\n".join(lines) + "\n"
