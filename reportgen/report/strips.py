"""Pictures cut from the map sheets so that no page pulls whole sheets to show a few tiles.

A map sheet holds every channel of a layer on one input: right for a detail input's page
at a layer, which shows them all. A channel page shows one channel on every detail input,
and the layer comparison four channels of every layer per input: from whole sheets, a
channel page pulled 32 sheets (22 MB for ResNet-18's first layer) and the comparison
hundreds (77 MB). So, once every sheet is written (folder reports):

* a *channel strip* per channel of a map layer with two or more detail inputs: the
  channel's padded tile from each detail input's sheet, in detail-input order, laid out
  by ``SheetGrid.for_layer(detail inputs, ...)``: ``strips/cNNNN.png`` in the layer's
  folder. Files grow with channels, not inputs (the detail inputs are a bounded set).
* a *comparison sheet* per model and detail input: row r holds the top 4 selected
  channels of the r-th map layer, each scaled to ``COMPARE_TILE`` pixels square (nearest
  neighbour up, box average of colour levels down): ``compare/<input-id>.png``.

The levels are the sheets' own (palette indices), so colours are unchanged. No torch.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Protocol

import numpy as np
from PIL import Image

from reportgen.imaging.pictures import palette_png
from reportgen.imaging.sheets import SheetGrid
from reportgen.report import paths
from reportgen.report.data import LayerRecord, ModelRecord, ReportData

__all__ = ["COMPARE_TILE", "COMPARE_CHANNELS", "write_strips", "channel_strip", "compare_sheet"]

COMPARE_TILE = 56  # pixels of a map in the comparison sheet
COMPARE_CHANNELS = 4  # channels a layer shows per input in the comparison
# Strips built at a time: channels x inputs x tile pixels kept in memory at most.
_STRIP_BLOCK_PIXELS = 64_000_000


class Staged(Protocol):
    """The staging folder (reportgen.report.output): read what was written, write more."""

    def read_back(self, relpath: str) -> bytes: ...

    def write(self, relpath: str, data: bytes | str) -> str: ...


def channel_strip(model_id: str, layer: str, channel: int) -> str:
    return f"{paths.layer_dir(model_id, layer)}/strips/{paths.channel_name(channel)}.png"


def compare_sheet(model_id: str, input_id: str) -> str:
    return f"{paths.model_dir(model_id)}/compare/{input_id}.png"


def write_strips(data: ReportData, staged: Staged) -> None:
    """Write every channel strip and comparison sheet of a folder report, and record their
    layouts on the layer and model records (the pages then show tiles of them)."""
    for model in data.models:
        compare: dict[str, list[np.ndarray]] = {i: [] for i in detail_inputs(model)}
        for layer in model.layers:
            if layer.sheet_grid is None or not layer.detail_pages:
                continue
            if _layer_strips(model, layer, staged, compare):
                model.compare_rows[layer.name] = len(model.compare_rows)
        if model.compare_rows:
            _write_compare_sheets(model, staged, compare)


def _read_levels(staged: Staged, path: str) -> tuple[np.ndarray, np.ndarray]:
    """A palette PNG's levels [H, W] and its colour table [256, 3]."""
    with Image.open(io.BytesIO(staged.read_back(path))) as picture:
        levels = np.asarray(picture)
        palette = picture.getpalette() or []
    table = np.zeros((256, 3), np.uint8)
    colours = np.asarray(palette, np.uint8).reshape(-1, 3)[:256]
    table[: len(colours)] = colours
    return levels, table


def _cells(levels: np.ndarray, grid: SheetGrid) -> np.ndarray:
    """A sheet's padded cells, [channels, cell height, cell width]."""
    rows = levels.reshape(grid.rows, grid.cell_height, grid.columns, grid.cell_width)
    cells = rows.transpose(0, 2, 1, 3).reshape(-1, grid.cell_height, grid.cell_width)
    return cells[: grid.channels]


def _layer_strips(
    model: ModelRecord, layer: LayerRecord, staged: Staged, compare: dict[str, list[np.ndarray]]
) -> bool:
    """Collect the comparison tiles of ``layer`` and write its channel strips (two or more
    detail inputs). False when the layer has no sheet for a detail input."""
    grid = layer.sheet_grid
    assert grid is not None
    detail = list(layer.detail_pages)
    if any(i not in layer.sheets for i in detail):
        return False
    strips = len(detail) >= 2
    strip_grid = SheetGrid.for_layer(len(detail), grid.tile_height, grid.tile_width, grid.pad)
    per_channel = len(detail) * grid.cell_height * grid.cell_width
    block = max(1, _STRIP_BLOCK_PIXELS // max(per_channel, 1))
    for first in range(0, grid.channels, block if strips else grid.channels):
        last = min(first + block, grid.channels) if strips else grid.channels
        gathered = np.zeros(
            (last - first, len(detail), grid.cell_height, grid.cell_width), np.uint8
        )
        table = None
        for d, input_id in enumerate(detail):
            levels, table = _read_levels(staged, layer.sheets[input_id])
            cells = _cells(levels, grid)
            gathered[:, d] = cells[first:last]
            if first == 0 and input_id in compare:
                compare[input_id].append(
                    _compare_row(cells, grid, layer.selected.get(input_id, []))
                )
        if strips and table is not None:
            for offset, cells in enumerate(gathered):
                c = first + offset
                staged.write(
                    channel_strip(model.id, layer.name, c), _strip_png(cells, strip_grid, table)
                )
        if not strips:
            break
    if strips:
        layer.strip_grid = strip_grid
    return True


def _strip_png(cells: np.ndarray, grid: SheetGrid, table: np.ndarray) -> bytes:
    """Padded cells [n, cell h, cell w] laid out by ``grid`` in one palette PNG."""
    full = np.zeros((grid.rows * grid.columns, grid.cell_height, grid.cell_width), np.uint8)
    full[: len(cells)] = cells
    by_row = full.reshape(grid.rows, grid.columns, grid.cell_height, grid.cell_width)
    return palette_png(by_row.transpose(0, 2, 1, 3).reshape(grid.height, grid.width), table)


def _compare_row(cells: np.ndarray, grid: SheetGrid, selected: list[int]) -> np.ndarray:
    """The top selected channels' maps (padding cut off), each COMPARE_TILE square, side
    by side; level 0 where fewer channels are selected."""
    row = np.zeros((COMPARE_TILE, COMPARE_TILE * COMPARE_CHANNELS), np.uint8)
    pad = grid.pad
    for k, channel in enumerate(selected[:COMPARE_CHANNELS]):
        tile = cells[channel, pad : pad + grid.tile_height, pad : pad + grid.tile_width]
        row[:, k * COMPARE_TILE : (k + 1) * COMPARE_TILE] = _scaled(tile)
    return row


def _scaled(tile: np.ndarray) -> np.ndarray:
    height, width = tile.shape
    shrink = height > COMPARE_TILE or width > COMPARE_TILE
    method = Image.Resampling.BOX if shrink else Image.Resampling.NEAREST
    picture = Image.fromarray(np.ascontiguousarray(tile), mode="L")
    return np.asarray(picture.resize((COMPARE_TILE, COMPARE_TILE), method))


def _write_compare_sheets(
    model: ModelRecord, staged: Staged, compare: dict[str, list[np.ndarray]]
) -> None:
    rows = len(model.compare_rows)
    model.compare_grid = SheetGrid(
        rows * COMPARE_CHANNELS, COMPARE_CHANNELS, rows, COMPARE_TILE, COMPARE_TILE, pad=0
    )
    first_layer = next(x for x in model.layers if x.name in model.compare_rows)
    for input_id, layer_rows in compare.items():
        if len(layer_rows) != rows:
            continue
        _, table = _read_levels(staged, first_layer.sheets[input_id])
        path = compare_sheet(model.id, input_id)
        staged.write(path, palette_png(np.concatenate(layer_rows, axis=0), table))
        model.compare_sheets[input_id] = path


def strip_index(layer: LayerRecord, input_id: str) -> int:
    """Where a detail input's map is in each channel strip of ``layer``."""
    return list(layer.detail_pages).index(input_id)


def compare_index(
    model: ModelRecord, layer: LayerRecord, input_id: str, channel: int
) -> int | None:
    """Where a channel's map is in an input's comparison sheet; None where it is not."""
    row = model.compare_rows.get(layer.name)
    chosen = layer.selected.get(input_id, [])[:COMPARE_CHANNELS]
    if row is None or channel not in chosen or input_id not in model.compare_sheets:
        return None
    return row * COMPARE_CHANNELS + chosen.index(channel)


def detail_inputs(model: ModelRecord) -> Iterator[str]:
    return (i for i in model.views if any(i in x.detail_pages for x in model.layers))
