"""A layer's kernels as sheets: one PNG per layer (and part) instead of one per channel.

* Filter sheets: every output channel's filter, tiled like the map sheets
  (``reportgen.imaging.sheets``): first-layer filters over RGB as colour and as their R, G
  and B parts (four sheets), deeper ones as the mean over their input channels (one),
  each filter scaled over its own range, as the per-channel pictures were.
* The kernel sheet of a weights view (``reportgen.analysis.weights``): for each output
  channel the kernel slices of its strongest inputs, in the view's order, in grey on a
  scale symmetric about zero (mid-grey is 0, white and black the channel's largest
  absolute weight among them), so that a channel's kernels compare with each other.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from reportgen.analysis.weights import StrongestInputs
from reportgen.imaging.pictures import encode_png
from reportgen.imaging.sheets import SheetGrid


def tile_sheet(pixels: np.ndarray, grid: SheetGrid) -> np.ndarray:
    """Pictures [N, h, w] or [N, h, w, 3] (uint8) tiled into one sheet, each padded with
    its own edge pixels; cells past the last picture are 0."""
    count, height, width = pixels.shape[:3]
    if (count, height, width) != (grid.channels, grid.tile_height, grid.tile_width):
        raise ValueError(f"pictures of shape {pixels.shape} do not fit {grid}")
    pad, extra = grid.pad, pixels.shape[3:]
    cells = np.zeros(
        (grid.rows * grid.columns, grid.cell_height, grid.cell_width, *extra), np.uint8
    )
    padding = ((0, 0), (pad, pad), (pad, pad)) + ((0, 0),) * len(extra)
    cells[:count] = np.pad(pixels, padding, mode="edge")
    by_row = cells.reshape(grid.rows, grid.columns, grid.cell_height, grid.cell_width, *extra)
    order = (0, 2, 1, 3, *range(4, 4 + len(extra)))
    return by_row.transpose(order).reshape(grid.height, grid.width, *extra)


def filter_grid(weight: np.ndarray) -> SheetGrid:
    """The geometry of a layer's filter sheets: one tile per output channel."""
    out, _, kh, kw = weight.shape
    return SheetGrid.for_layer(int(out), int(kh), int(kw))


def _scaled(kernels: np.ndarray) -> np.ndarray:
    """Each kernel [N, ...] min-max scaled to 0..1 over its own values; flat ones 0.5."""
    flat = kernels.reshape(kernels.shape[0], -1)
    low = flat.min(axis=1).reshape((-1,) + (1,) * (kernels.ndim - 1))
    span = flat.max(axis=1).reshape(low.shape) - low
    safe = np.where(span > 0, span, 1.0)
    return np.where(span > 0, (kernels - low) / safe, 0.5)


def _levels(unit: np.ndarray) -> np.ndarray:
    return np.rint(unit * 255.0).astype(np.uint8)


def filter_sheet_pngs(weight: np.ndarray, parts: tuple[str, ...]) -> dict[str, bytes]:
    """The filter sheets of a Conv2d weight [out, in, kh, kw]: ``rgb``, ``r``, ``g``,
    ``b`` for one over RGB (the same pixels as the per-channel pictures had), ``mean``
    for a deeper one."""
    kernels = np.asarray(weight, dtype=np.float64)
    grid = filter_grid(kernels)
    if "mean" in parts:
        grey = _levels(_scaled(kernels.mean(axis=1)))
        return {"mean": encode_png(Image.fromarray(tile_sheet(grey, grid), mode="L"))}
    colour = _scaled(kernels).transpose(0, 2, 3, 1)  # [out, kh, kw, 3] on each filter's range
    sheets = {"rgb": _rgb_png(_levels(colour), grid)}
    for index, part in enumerate("rgb"):
        tinted = np.zeros_like(colour)
        tinted[..., index] = colour[..., index]
        sheets[part] = _rgb_png(_levels(tinted), grid)
    return {part: sheets[part] for part in parts}


def _rgb_png(pixels: np.ndarray, grid: SheetGrid) -> bytes:
    return encode_png(Image.fromarray(tile_sheet(pixels, grid), mode="RGB"))


def kernel_grid(weight: np.ndarray, view: StrongestInputs) -> SheetGrid:
    """The kernel sheet's geometry: ``kernel_slots(view)`` tiles per output channel."""
    out, _, kh, kw = weight.shape
    return SheetGrid.for_layer(int(out) * kernel_slots(view), int(kh), int(kw))


def kernel_slots(view: StrongestInputs) -> int:
    """Tiles per output channel: as many as it can show (a depthwise channel: one)."""
    return min(2 * view.per_sign, view.inputs_per_output)


def kernel_tile(view: StrongestInputs, channel: int, rank: int) -> int:
    """The tile of the ``rank``-th shown input (``StrongestInputs.shown``) of a channel."""
    return channel * kernel_slots(view) + rank


def kernel_sheet_png(weight: np.ndarray, view: StrongestInputs) -> bytes:
    """Each output channel's shown kernel slices, in grey, symmetric about zero."""
    kernels = np.asarray(weight, dtype=np.float64)
    out, _, kh, kw = kernels.shape
    slots = kernel_slots(view)
    tiles = np.zeros((out * slots, kh, kw))
    for channel in range(out):
        chosen = [int(s) for s in view.slices[channel] if s >= 0]
        picked = kernels[channel, chosen]
        largest = float(np.abs(picked).max()) if picked.size else 0.0
        if largest > 0:
            tiles[channel * slots : channel * slots + len(chosen)] = picked / largest
    grey = _levels((tiles + 1.0) / 2.0)
    grid = kernel_grid(kernels, view)
    return encode_png(Image.fromarray(tile_sheet(grey, grid), mode="L"))
