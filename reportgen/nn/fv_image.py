"""The picture that feature visualisation optimises, and what is done to it at every step.

* its parameterisation: a Fourier basis, each frequency scaled by 1/frequency, with
  decorrelated colour (the square root of ImageNet's colour correlation matrix),
  squashed to [0, 1] with a sigmoid (``fourier_image``);
* its resize to the model's input, as the photos' view resizes them (``Resize``,
  ``photo_view``);
* transformation robustness: padding, jitter, scale and rotation (``random_transform``).

``reportgen.nn.featurevis`` optimises it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

INIT_SD = 0.01
DECAY_POWER = 1.0
# lucid's "magic" divisor that keeps the initial image in the sigmoid's linear range.
FOURIER_MAGIC = 4.0
# lucent's standard_transforms: pad 12 (grey), jitter 8, scale, rotate, jitter 4.
PAD = 12
JITTER_FIRST = 8
JITTER_LAST = 4
SCALES = tuple(1.0 + (i - 5) / 50.0 for i in range(11))
ANGLES = tuple(float(a) for a in [*range(-10, 11), 0, 0, 0, 0, 0])
# Square root of the colour correlation matrix of ImageNet, as lucid uses it
# (lucid/optvis/param/color.py), columns normalised so the largest has norm 1.
_COLOR_CORRELATION_SVD_SQRT = np.asarray(
    [[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], dtype=np.float32
)
COLOR_CORRELATION = _COLOR_CORRELATION_SVD_SQRT / np.max(
    np.linalg.norm(_COLOR_CORRELATION_SVD_SQRT, axis=0)
)


# --- the image parameterisation -------------------------------------------------------


def rfft2d_freqs(height: int, width: int) -> np.ndarray:
    """Frequency magnitude of each coefficient of a real 2-D FFT, shape [H, W//2+1]."""
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.fftfreq(width)[: width // 2 + 1]
    return np.sqrt(fx * fx + fy * fy)


@dataclass
class FourierImage:
    """A batch of RGB images held as scaled Fourier coefficients (the optimised tensor)."""

    spectrum: torch.Tensor  # [B, 3, H, W//2+1, 2] real and imaginary parts; requires grad
    scale: torch.Tensor  # [1, 1, H, W//2+1, 1]: 1/frequency
    height: int
    width: int

    def rgb(self) -> torch.Tensor:
        """The images, [B, 3, H, W] in (0, 1): inverse FFT, colour decorrelation, sigmoid."""
        coefficients = torch.view_as_complex(self.scale * self.spectrum)
        image = torch.fft.irfftn(coefficients, s=(self.height, self.width), norm="ortho")
        image = image / FOURIER_MAGIC
        return torch.sigmoid(decorrelate_colour(image))


def fourier_image(
    batch: int,
    size: int | tuple[int, int],
    generator: torch.Generator,
    device: Any = "cpu",
    sd: float = INIT_SD,
    decay_power: float = DECAY_POWER,
) -> FourierImage:
    """Random small coefficients (drawn on the CPU, so every device starts alike)."""
    height, width = (size, size) if isinstance(size, int) else size
    freqs = rfft2d_freqs(height, width)
    scale = 1.0 / np.maximum(freqs, 1.0 / max(height, width)) ** decay_power
    init = torch.randn((batch, 3, *freqs.shape, 2), generator=generator) * sd
    spectrum = init.to(device).requires_grad_(True)
    scale_t = torch.tensor(scale, dtype=torch.float32, device=device)[None, None, ..., None]
    return FourierImage(spectrum, scale_t, height, width)


def decorrelate_colour(image: torch.Tensor) -> torch.Tensor:
    """Map decorrelated colour channels to RGB with ImageNet's colour correlation sqrt."""
    matrix = torch.as_tensor(COLOR_CORRELATION, dtype=image.dtype, device=image.device)
    return torch.einsum("bchw,dc->bdhw", image, matrix)


# --- to the model's input size -------------------------------------------------------


def resize_matrix(source: int, target: int) -> torch.Tensor:
    """[target, source] weights of a 1-D bilinear resize (half-pixel centres, the
    triangle filter widened when shrinking): ``F.interpolate(..., mode="bilinear",
    antialias=True)`` along one axis, which is what PIL's bilinear resize computes."""
    basis = torch.eye(source, dtype=torch.float64).view(source, 1, 1, source)
    rows = F.interpolate(
        basis, size=(1, target), mode="bilinear", align_corners=False, antialias=True
    )
    return rows[:, 0, 0, :].t().contiguous().float()


class Resize:
    """Resize a batch [B, C, H, W] to ``size`` as two small matrix products.

    Bilinear (antialiased when shrinking). Written as matrix products, its backward is
    deterministic on every device (``F.interpolate``'s CUDA backward is not), and it
    costs little next to the network."""

    def __init__(self, source: tuple[int, int], target: tuple[int, int], device: Any) -> None:
        self.source, self.target = source, target
        self.identity = source == target
        self.rows = resize_matrix(source[0], target[0]).to(device)
        self.columns = resize_matrix(source[1], target[1]).to(device)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if self.identity:
            return images
        rows, columns = self.rows.to(images.dtype), self.columns.to(images.dtype)
        return torch.matmul(torch.matmul(rows, images), columns.t())


def pair(size: int | Sequence[int]) -> tuple[int, int]:
    """(height, width) from a side or torchvision's (side,) or (height, width)."""
    if isinstance(size, int):
        return size, size
    values = [int(v) for v in size]
    return (values[0], values[0]) if len(values) == 1 else (values[0], values[1])


def photo_view(preprocessing: Any) -> Callable[[np.ndarray], torch.Tensor]:
    """The photos' preprocessing (``reportgen.nn.models.Preprocessing``: resize, centre
    crop, normalise) as a function of a uint8 [H, W, 3] picture: the view on which the
    run's inputs are measured."""
    from PIL import Image

    def view(pixels: np.ndarray) -> torch.Tensor:
        picture = Image.fromarray(np.ascontiguousarray(pixels), mode="RGB")
        return torch.as_tensor(preprocessing.tensor(preprocessing.view(picture)))

    return view


# --- transformation robustness --------------------------------------------------------


def _choice(options: Sequence[Any], generator: torch.Generator) -> Any:
    return options[int(torch.randint(len(options), (1,), generator=generator))]


def jitter(
    images: torch.Tensor, distance: int | tuple[int, int], generator: torch.Generator
) -> torch.Tensor:
    """Crop ``distance`` pixels off (rows, columns) at a random offset (lucent's
    ``jitter``; with a distance per axis, a random crop)."""
    rows, columns = (distance, distance) if isinstance(distance, int) else distance
    if rows < 1 and columns < 1:
        return images
    dx = _choice(range(max(1, columns)), generator)
    dy = _choice(range(max(1, rows)), generator)
    height, width = images.shape[-2:]
    return images[..., dy : dy + height - rows, dx : dx + width - columns]


def scale_rotate(images: torch.Tensor, scale: float, degrees: float) -> torch.Tensor:
    """Zoom by ``scale`` and rotate by ``degrees`` about the centre; the size is kept.

    Bilinear, with border padding, as ``F.grid_sample(..., align_corners=False)``. On
    the CPU that is what runs (deterministic there). Elsewhere it is written as gathers:
    their backward (an accumulating index_put) has a deterministic CUDA kernel, which
    grid_sample's backward lacks; on the CPU they would be about 3 times slower.
    """
    height, width = images.shape[-2:]
    angle = math.radians(degrees)
    cos, sin = math.cos(angle) / scale, math.sin(angle) / scale
    theta = torch.tensor([[[cos, -sin, 0.0], [sin, cos, 0.0]]], dtype=torch.float32)
    if images.device.type == "cpu":
        grid = F.affine_grid(
            theta.to(images.dtype).expand(images.shape[0], 2, 3), list(images.shape), False
        )
        return F.grid_sample(
            images, grid, mode="bilinear", padding_mode="border", align_corners=False
        )
    return _gather_bilinear(images, theta)


def _gather_bilinear(images: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """``F.grid_sample`` (bilinear, border, align_corners=False) of an affine ``theta``
    [1, 2, 3] shared by the batch, as four gathers."""
    height, width = images.shape[-2:]
    grid = F.affine_grid(theta, [1, 1, height, width], align_corners=False)[0]
    # Normalised coordinates to pixel positions, clamped to the border.
    x = ((grid[..., 0] + 1) * width - 1) / 2
    y = ((grid[..., 1] + 1) * height - 1) / 2
    x = x.clamp(0, width - 1)
    y = y.clamp(0, height - 1)
    x0, y0 = x.floor(), y.floor()
    wx, wy = (x - x0).to(images.device), (y - y0).to(images.device)
    x0, y0 = x0.long(), y0.long()
    x1, y1 = (x0 + 1).clamp(max=width - 1), (y0 + 1).clamp(max=height - 1)
    flat = images.flatten(-2)
    dtype = images.dtype

    def at(yy: torch.Tensor, xx: torch.Tensor) -> torch.Tensor:
        index = (yy * width + xx).reshape(-1).to(images.device)
        return flat[..., index].reshape(*images.shape[:-2], height, width)

    wx, wy = wx.to(dtype), wy.to(dtype)
    top = at(y0, x0) * (1 - wx) + at(y0, x1) * wx
    bottom = at(y1, x0) * (1 - wx) + at(y1, x1) * wx
    return top * (1 - wy) + bottom * wy


def random_transform(
    images: torch.Tensor, generator: torch.Generator, output: tuple[int, int] | None = None
) -> torch.Tensor:
    """lucent's standard transforms: pad 12 with grey, jitter 8, random scale and
    rotation, jitter 4. One draw for the whole batch, from ``generator``.

    ``output``: the size the network is to see (the model's input size). The first
    jitter then becomes a random crop to ``output`` plus the last jitter, anywhere in
    the padded picture (at least 8 pixels of play): the photos' centre crop, made
    random, so every part of the picture is seen. None: lucent's sizes."""
    height, width = images.shape[-2:]
    if output is None:
        pads, distance = (PAD, PAD), (JITTER_FIRST, JITTER_FIRST)
    else:
        # Enough padding for the crop and its play even when the picture is small.
        need = [o + JITTER_LAST + JITTER_FIRST - s for o, s in zip(output, (height, width))]
        pads = (max(PAD, -(-need[0] // 2)), max(PAD, -(-need[1] // 2)))
        distance = (
            height + 2 * pads[0] - output[0] - JITTER_LAST,
            width + 2 * pads[1] - output[1] - JITTER_LAST,
        )
    padded = F.pad(images, (pads[1], pads[1], pads[0], pads[0]), mode="constant", value=0.5)
    moved = jitter(padded, distance, generator)
    turned = scale_rotate(moved, _choice(SCALES, generator), _choice(ANGLES, generator))
    return jitter(turned, JITTER_LAST, generator)
