"""Where each channel's map lies in a map sheet: one picture per layer and input.

A folder report holds, for each layer and input, one PNG with every channel's map
tiled in a grid (instead of one small file per map: a few hundred files for a big
report instead of tens of thousands, which is what made writing and copying reports
slow). Pages crop a tile out of the sheet with CSS; the manifest gives this geometry
so other tools can crop it too.

Each tile is the map at its true resolution with ``pad`` pixels of its own edge
repeated around it: a browser that smooths a scaled tile (the overlay on the channel
page) then blends in the tile's own edge, never its neighbour. Plain data, no imports.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class SheetGrid:
    channels: int
    columns: int
    rows: int
    tile_width: int  # map pixels, without padding
    tile_height: int
    pad: int = 1

    @classmethod
    def for_layer(cls, channels: int, height: int, width: int, pad: int = 1) -> SheetGrid:
        """A near-square grid: ceil(sqrt(C)) columns, as many rows as needed."""
        columns = max(1, math.ceil(math.sqrt(channels)))
        rows = max(1, math.ceil(channels / columns))
        return cls(channels, columns, rows, width, height, pad)

    @property
    def cell_width(self) -> int:
        return self.tile_width + 2 * self.pad

    @property
    def cell_height(self) -> int:
        return self.tile_height + 2 * self.pad

    @property
    def width(self) -> int:
        return self.columns * self.cell_width

    @property
    def height(self) -> int:
        return self.rows * self.cell_height

    def cell(self, channel: int) -> tuple[int, int]:
        """(column, row) of a channel's tile: row by row, left to right."""
        if not 0 <= channel < self.channels:
            raise IndexError(f"channel {channel} is not in a sheet of {self.channels}")
        return channel % self.columns, channel // self.columns

    def box(self, channel: int) -> tuple[int, int, int, int]:
        """The map's pixels in the sheet, padding excluded: (x0, y0, x1, y1)."""
        column, row = self.cell(channel)
        x0 = column * self.cell_width + self.pad
        y0 = row * self.cell_height + self.pad
        return x0, y0, x0 + self.tile_width, y0 + self.tile_height

    @classmethod
    def from_manifest(cls, entry: dict[str, Any]) -> SheetGrid:
        """The grid a manifest's ``map_sheet`` entry describes (see ``describe``)."""
        fields = ("channels", "columns", "rows", "tile_width", "tile_height", "pad")
        return cls(*(int(entry[name]) for name in fields))

    def describe(self) -> dict[str, Any]:
        """For the manifest: enough to crop any channel's map out of a sheet."""
        described = asdict(self)
        described["order"] = "row by row: channel c is at column c % columns, row c // columns"
        described["box"] = (
            "x0 = column * (tile_width + 2 * pad) + pad, "
            "y0 = row * (tile_height + 2 * pad) + pad, x1 = x0 + tile_width, y1 = y0 + tile_height"
        )
        return described


# Dataset examples of a folder report: the strips of a block of channels in one JPEG
# (a few hundred files for a big model instead of one per channel).
# Channels a dataset-example sheet holds: a channel page pulls its channel's sheet to show
# one row of it, so a sheet stays small (16 rows of 9 tiles: about 0.6 megapixels).
EXAMPLE_SHEET_CHANNELS = 16


def example_grid(per_strip: int, tile: int) -> SheetGrid:
    """A sheet of dataset examples, one row per channel of its block: row r is channel
    ``block * EXAMPLE_SHEET_CHANNELS + r``'s strip of ``per_strip`` tiles, left to right."""
    rows = EXAMPLE_SHEET_CHANNELS
    return SheetGrid(rows, 1, rows, per_strip * tile, tile, pad=0)


def example_firsts_grid(channels: int, tile: int) -> SheetGrid:
    """A layer's sheet of each channel's strongest dataset example, one tile a channel
    (what a layer page's cards show: the page pulls this one picture, not every sheet)."""
    return SheetGrid.for_layer(channels, tile, tile, pad=0)


def example_first_grid(per_strip: int, tile: int) -> SheetGrid:
    """The same sheet seen tile by tile: channel row r's strongest example is tile
    ``r * per_strip`` (what a layer page's card shows)."""
    rows = EXAMPLE_SHEET_CHANNELS
    return SheetGrid(rows * per_strip, per_strip, rows, tile, tile, pad=0)
