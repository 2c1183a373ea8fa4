"""Showing one tile of a map sheet (reportgen.imaging.sheets) in a page, with CSS only.

A tile is ``<span class="tile GRID tcI trJ"><img src=SHEET alt=...></span>``: the span is
the box the map is shown in (its size comes from the page's classes, e.g. ``map big``)
and clips the sheet; the image is the whole sheet, scaled so that one tile fills the
span, and moved so that tile I, J is the one inside it. The positions are percentages
of the span, so the same rules work at every display size. They are class rules generated
for the report's sheets and written after style.css's own rules in ``assets/style.css``:
the pages' Content-Security-Policy allows no inline style. The <img> keeps what a
picture should have: alt text, lazy loading, and "open image" in the browser.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from markupsafe import Markup

from reportgen.imaging.sheets import EXAMPLE_SHEET_CHANNELS, SheetGrid
from reportgen.report.text import escape_text as esc

if TYPE_CHECKING:
    from reportgen.report.data import ChannelRecord, LayerRecord, ModelRecord


# Display width of one map of a whole sheet, in CSS pixels (a detail input's page)
SHEET_CELL_MIN, SHEET_CELL_MAX = 28, 64


def grid_class(grid: SheetGrid) -> str:
    """One class per sheet geometry: layers of the same shape share their rules."""
    return f"g{grid.columns}x{grid.rows}-{grid.tile_width}x{grid.tile_height}p{grid.pad}"


def tile_classes(grid: SheetGrid, channel: int) -> str:
    column, row = grid.cell(channel)
    return f"tile {grid_class(grid)} tc{column} tr{row}"


def sheet_tile(
    url: Callable[[str], str],
    grid: SheetGrid,
    index: int,
    sheet: str,
    classes: str,
    alt: str,
    lazy: bool = True,
) -> str:
    """Tile ``index`` of ``sheet`` laid out by ``grid``, as page HTML (escaped): maps,
    filters, kernels and dataset examples are all shown this one way. ``lazy``: loaded
    when scrolled to (a layer page's hundreds of cards); not for the pictures at the top
    of a channel page, on screen anyway (and a few bytes on each of thousands)."""
    loading = ' loading="lazy"' if lazy else ""
    return (
        f'<span class="{esc(classes)} {tile_classes(grid, index)}"><img src="{esc(url(sheet))}" '
        f'alt="{esc(alt)}"{loading}></span>'
    )


def _percent(value: float) -> str:
    text = f"{value:.4f}".rstrip("0").rstrip(".")
    return f"{text}%"


def grid_rules(grid: SheetGrid) -> list[str]:
    """CSS for one geometry. For a span E pixels wide showing a tile w map pixels wide,
    the sheet (W wide) is drawn E*W/w wide, i.e. W/w*100% of the span, and its left edge
    sits x0/w spans to the left of the span's, where x0 is the tile's first pixel."""
    name = grid_class(grid)
    rules = [
        # A tile shown at its own pixel size (a strip of dataset examples)
        f".{name}.own-size {{ width: {grid.tile_width}px; height: {grid.tile_height}px; }}",
        f".{name} > img {{ width: {_percent(100 * grid.width / grid.tile_width)}; "
        f"height: {_percent(100 * grid.height / grid.tile_height)}; }}",
    ]
    # A whole sheet under a grid of links, one a map (a detail input's page): the links'
    # grid is the sheet's, and a map is shown 28 to 64 px wide (a link a finger can hit)
    rules += [
        f".{name}.sheet-view {{ min-width: {SHEET_CELL_MIN * grid.columns}px; "
        f"max-width: {SHEET_CELL_MAX * grid.columns}px; }}",
        f".{name}.sheet-links {{ grid-template-columns: repeat({grid.columns}, 1fr); "
        f"grid-template-rows: repeat({grid.rows}, 1fr); }}",
    ]
    for column in range(grid.columns):
        x0 = column * grid.cell_width + grid.pad
        left = _percent(-100 * x0 / grid.tile_width)
        rules.append(f".{name}.tc{column} > img {{ left: {left}; }}")
    for row in range(grid.rows):
        y0 = row * grid.cell_height + grid.pad
        top = _percent(-100 * y0 / grid.tile_height)
        rules.append(f".{name}.tr{row} > img {{ top: {top}; }}")
    return rules


def solo_rules(grid: SheetGrid) -> list[str]:
    """CSS for a geometry's tiles shown as a lone <img> at the tile's own pixel size
    (``solo_tile``): each class sets the offset that ``img.solo`` (style.css) shows."""
    name = grid_class(grid)
    rules = []
    for column in range(grid.columns):
        x0 = column * grid.cell_width + grid.pad
        rules.append(f"img.{name}.tc{column} {{ --tx: -{x0}px; }}")
    for row in range(grid.rows):
        y0 = row * grid.cell_height + grid.pad
        rules.append(f"img.{name}.tr{row} {{ --ty: -{y0}px; }}")
    return rules


def solo_tile(
    url: Callable[[str], str], grid: SheetGrid, index: int, sheet: str, classes: str, alt: str
) -> str:
    """Tile ``index`` of ``sheet`` as one <img> (no clipping span): one element a tile,
    where a layer page's cards must stay under its element budget. The tile is shown at
    its own pixel size (``object-fit: none``), moved by ``solo_rules``."""
    column, row = grid.cell(index)
    names = f"solo {classes} {grid_class(grid)} tc{column} tr{row}"
    size = f'width="{grid.tile_width}" height="{grid.tile_height}"'
    return (
        f'<img class="{esc(names)}" src="{esc(url(sheet))}" alt="{esc(alt)}" {size} loading="lazy">'
    )


def stylesheet(grids: Iterable[SheetGrid], solo: Iterable[SheetGrid] = ()) -> str:
    """The rules for every sheet geometry in a report, in a stable order; ``solo``: the
    geometries also shown as lone <img> tiles."""
    lines = [
        "/* reportgen: tiles of map sheets, generated for this report's layers "
        "(reportgen/report/tiles.py); .tile itself is styled in style.css */",
    ]
    seen: set[str] = set()
    for grid in sorted(set(grids), key=grid_class):
        if grid_class(grid) not in seen:
            seen.add(grid_class(grid))
            lines.extend(grid_rules(grid))
    for grid in sorted(set(solo), key=grid_class):
        lines.extend(solo_rules(grid))
    return "\n".join(lines) + "\n"


def solo_grids(data: Any) -> list[SheetGrid]:
    """The geometries shown as lone <img> tiles: feature visualisations, and the
    strongest examples of the "why" rows (reportgen/report/why.py)."""
    grids: list[SheetGrid] = []
    for model in data.models:
        for layer in model.layers:
            if layer.feature_vis_grid is not None:
                grids.append(layer.feature_vis_grid)
            grids.extend(g for g in (layer.example_first_grid,) if g)
    return grids


def report_grids(data: Any) -> list[SheetGrid]:
    """Every sheet geometry of a report: maps, filters and weights-view kernels (none in
    a single-file report)."""
    grids: list[SheetGrid] = []
    for model in data.models:
        for layer in model.layers:
            view = layer.weights_view
            kernels = view.kernel_grid if view is not None else None
            grids.extend(g for g in (layer.sheet_grid, layer.filter_grid, kernels) if g)
            grids.extend(g for g in (layer.example_grid, layer.example_first_grid) if g)
            grids.extend(g for g in (layer.strip_grid, layer.feature_vis_grid) if g)
        grids.extend(g for g in (model.compare_grid,) if g)
    return grids


def map_picture(
    url: Callable[[str], str],
    layer: Any,
    channel: Any,
    input_id: str,
    classes: str,
    alt: str,
    size: int | None = None,
) -> Markup:
    """A channel's map on one input, as page HTML: a tile of the layer's sheet, or (in a
    single-file report) the map's own picture, ``size`` pixels square before CSS (a tile's
    box is sized by its classes). Python, not a Jinja macro: a layer page shows every
    channel for every input, and a macro call costs tens of microseconds."""
    # f-strings and escape_text: Markup.format and escape() are several times slower,
    # and a big report has hundreds of thousands of these.
    grid = layer.sheet_grid
    if grid is not None:
        return Markup(sheet_tile(url, grid, channel.index, layer.sheets[input_id], classes, alt))
    picture = url(channel.maps[input_id])
    box = f' width="{size}" height="{size}"' if size else ""
    return Markup(
        f'<img class="{esc(classes)}" src="{esc(picture)}" alt="{esc(alt)}"{box} loading="lazy">'
    )


def strip_picture(
    url: Callable[[str], str],
    model_id: str,
    layer: Any,
    channel: Any,
    input_id: str,
    classes: str,
    alt: str,
) -> Markup:
    """A channel's map on a detail input from the channel's own strip (one file for the
    channel page's maps and overlays), else from the input's sheet."""
    if layer.strip_grid is None:
        return map_picture(url, layer, channel, input_id, classes, alt, size=168)
    from reportgen.report.strips import channel_strip

    index = list(layer.detail_pages).index(input_id)
    strip = channel_strip(model_id, layer.name, channel.index)
    return Markup(sheet_tile(url, layer.strip_grid, index, strip, classes, alt))


def compare_picture(
    url: Callable[[str], str],
    model: ModelRecord,
    layer: LayerRecord,
    channel: ChannelRecord,
    input_id: str,
    alt: str,
) -> Markup:
    """A channel's map in the layer comparison: a small tile of the input's comparison
    sheet, else (single-file reports) the map itself."""
    from reportgen.report.strips import compare_index

    index = compare_index(model, layer, input_id, channel.index)
    if index is None or model.compare_grid is None:
        return map_picture(url, layer, channel, input_id, "map", alt)
    sheet = model.compare_sheets[input_id]
    return Markup(sheet_tile(url, model.compare_grid, index, sheet, "map", alt))


def example_strip(url: Callable[[str], str], layer: Any, channel: Any, alt: str) -> Markup:
    """A channel's dataset examples: its row of the layer's example sheet, at its size."""
    row = channel.index % EXAMPLE_SHEET_CHANNELS
    grid, sheet = layer.example_grid, channel.examples_sheet
    tile = sheet_tile(url, grid, row, sheet, "examples own-size", alt, lazy=False)
    return Markup(tile)


def example_first(
    url: Callable[[str], str], layer: Any, channel: Any, alt: str, solo: bool = False
) -> Markup:
    """A channel's strongest dataset example: the first tile of its row; a lone <img>
    (``solo_tile``) where ``solo`` asks for one or a card also shows a feature
    visualisation."""
    grid, sheet = layer.example_first_grid, layer.example_first_sheet
    if solo or layer.feature_vis_grid is not None:
        return Markup(solo_tile(url, grid, channel.index, sheet, "example-first", alt))
    return Markup(sheet_tile(url, grid, channel.index, sheet, "example-first", alt))


def strongest_example(
    url: Callable[[str], str], layer: Any, channel: Any, alt: str, solo: bool = False
) -> str:
    """A channel's strongest dataset example, 64 pixels square, as page HTML (escaped):
    a tile of the layer's sheet of them (a lone <img> with ``solo``), else the first crop
    of its own strip, else the whole view it is; "" when it has none."""
    if channel.examples_sheet:
        return example_first(url, layer, channel, alt, solo)
    first = channel.examples_image or (channel.example_views or [None])[0]
    if not first:
        return ""
    return (
        f'<img class="example-first" src="{esc(url(first))}" alt="{esc(alt)}" width="64" '
        'height="64" loading="lazy">'
    )
