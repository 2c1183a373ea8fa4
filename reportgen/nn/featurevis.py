"""Feature visualisation: for a channel, an image optimised to excite it (or suppress it).

The recipe of Olah, Mordvintsev and Schubert, "Feature Visualization" (Distill, 2017),
as lucid and lucent implement it:

* the image is parameterised in a Fourier basis, each frequency scaled by 1/frequency,
  with decorrelated colour (the square root of ImageNet's colour correlation matrix),
  squashed to [0, 1] with a sigmoid, then normalised as the model expects;
* inside the loop the picture (``--fv-size``, the size that is saved) is resized as the
  photos' view resizes it (256 for ImageNet models: the default picture is 256 px, so
  the network sees it pixel for pixel, as it sees the photos) and, where the photos get
  a centre crop, a random crop of the model's input size (224) is taken instead;
* at every step it is padded, jittered (that random crop), scaled and rotated at that
  size (transformation robustness), so that what survives is what the channel
  responds to, not noise;
* Adam (lr 0.1: lucent's 0.05 is for 512 steps, ours are half as many) maximises the
  channel's mean activation.

The channels of one layer are optimised together, one image per channel in a batch
(loss = minus the sum of each image's own channel mean). The forward pass stops at the
layer (a hook raises once it has the layer's output), so early layers are cheap.

After optimisation each image is rounded to 8 bits, exactly as it is saved, and measured
in a clean forward pass (no padding or jitter) through ``view``: the preprocessing the
photos get (``photo_view``: resize, centre crop, normalise), so that its numbers
compare like for like with theirs: its channel's mean activation, and the mean of the
layer's other channels on the same image.

torch lives here; the report and imaging layers only see uint8 arrays and numbers.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import torch.utils.deterministic

from reportgen.errors import UsageError
from reportgen.nn.hooks import ForwardHooks

log = logging.getLogger("reportgen")

# lucent's 0.05 over its 512 steps; twice that over our 256 covers the same ground
# (measured: benchmarks/featurevis_bench.py; docs/feature-vis.md).
LEARNING_RATE = 0.1
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
# Images optimised in one batch; a layer with more chosen channels runs in several batches.
MAX_BATCH = 64
MIN_SIZE = 32
# PyTorch's deterministic mode fills every new tensor with NaN (to expose reads of
# uninitialised memory); the optimisation reads none, so it is off in ``deterministic``:
# the same pixels, a little less time per step (2% measured on the CPU: docs/feature-vis.md).
FILL_UNINITIALIZED_MEMORY = False

# Square root of the colour correlation matrix of ImageNet, as lucid uses it
# (lucid/optvis/param/color.py), columns normalised so the largest has norm 1.
_COLOR_CORRELATION_SVD_SQRT = np.asarray(
    [[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], dtype=np.float32
)
COLOR_CORRELATION = _COLOR_CORRELATION_SVD_SQRT / np.max(
    np.linalg.norm(_COLOR_CORRELATION_SVD_SQRT, axis=0)
)


def check_settings(steps: int, size: int, channels: str) -> None:
    """Reject out-of-range feature-visualisation options before any work is done."""
    if steps < 1:
        raise UsageError(f"--fv-steps must be at least 1, got {steps}")
    if size < MIN_SIZE:
        raise UsageError(f"--fv-size must be at least {MIN_SIZE} pixels, got {size}")
    if channels not in ("selected", "all"):
        raise UsageError(f"--fv-channels must be 'selected' or 'all', got {channels!r}")


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


# --- the model side -------------------------------------------------------------------


class _Reached(Exception):
    """Raised by the hook once the layer's output is in hand: the rest is not needed."""


class LayerProbe:
    """Runs a model up to one layer and returns that layer's per-channel means.

    A forward hook keeps the output in the autograd graph (not detached), reduces it to
    channel means at once (before an in-place op that follows could change it) and then
    stops the forward pass. Parameters are frozen while the probe is open.
    """

    def __init__(self, module: torch.nn.Module, layer: str) -> None:
        modules = dict(module.named_modules())
        if layer not in modules:
            raise UsageError(f"no layer named {layer!r} in the model")
        self.module = module
        self.target = modules[layer]
        self.layer = layer
        self._means: torch.Tensor | None = None

    def _hook(self, _name: str, _module: torch.nn.Module, _inputs: Any, output: Any) -> None:
        if not isinstance(output, torch.Tensor) or output.dim() < 2:
            return
        values = output.float()
        self._means = values.mean(dim=tuple(range(2, values.dim()))) if values.dim() > 2 else values
        raise _Reached

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        """[B, C] channel means of the layer for a normalised batch."""
        self._means = None
        with contextlib.suppress(_Reached):
            self.module(batch)
        if self._means is None:
            raise UsageError(f"layer {self.layer!r} produced no tensor output")
        means, self._means = self._means, None
        return means

    @contextlib.contextmanager
    def open(self) -> Iterator[LayerProbe]:
        with ForwardHooks([(self.layer, self.target)], self._hook):
            flags = [(p, p.requires_grad) for p in self.module.parameters()]
            for parameter, _ in flags:
                parameter.requires_grad_(False)
            try:
                yield self
            finally:
                for parameter, flag in flags:
                    parameter.requires_grad_(flag)


@contextlib.contextmanager
def deterministic(device: Any) -> Iterator[None]:
    """Deterministic algorithms for the duration (the previous state restored after).

    Every op of the optimisation has a deterministic kernel on the CPU; on CUDA,
    cuDNN is also told to pick deterministic convolutions. ``warn_only``: a model with
    some op that has no deterministic kernel still runs (with a warning) rather than fail.
    The deterministic mode's filling of new tensors with NaN is turned off (see
    ``FILL_UNINITIALIZED_MEMORY``): it changes no result, and costs time at every step.
    """
    before = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    cudnn = torch.backends.cudnn
    cudnn_before = (cudnn.deterministic, cudnn.benchmark)
    settings: Any = torch.utils.deterministic  # a module with a property
    fill_before = settings.fill_uninitialized_memory
    torch.use_deterministic_algorithms(True, warn_only=True)
    settings.fill_uninitialized_memory = FILL_UNINITIALIZED_MEMORY
    if torch.device(device).type == "cuda":
        cudnn.deterministic, cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before, warn_only=warn_only)
        settings.fill_uninitialized_memory = fill_before
        cudnn.deterministic, cudnn.benchmark = cudnn_before


@dataclass
class Visualisation:
    """One optimised image and what it measured in a clean forward pass."""

    channel: int
    sign: int  # +1: maximises the channel, -1: minimises it
    image: np.ndarray  # uint8 [H, W, 3]
    activation: float  # the channel's mean activation on ``image``, through ``view``
    others_mean: float  # mean over the layer's other channels of their mean, the same


def to_uint8(rgb: torch.Tensor) -> np.ndarray:
    """[B, 3, H, W] in [0, 1] -> uint8 [B, H, W, 3], rounded as saved."""
    array = rgb.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8)
    return array.permute(0, 2, 3, 1).cpu().numpy()


def visualise(
    module: torch.nn.Module,
    layer: str,
    channels: Sequence[int],
    *,
    mean: Sequence[float],
    std: Sequence[float],
    steps: int = 256,
    size: int = 256,
    input_size: int | Sequence[int] | None = None,
    resize_to: int | Sequence[int] | None = None,
    view: Callable[[np.ndarray], torch.Tensor] | None = None,
    seed: int = 0,
    device: Any = "cpu",
    negative: bool = False,
    lr: float = LEARNING_RATE,
    max_batch: int = MAX_BATCH,
) -> list[Visualisation]:
    """Optimise one image per channel (and per channel a suppressing one with
    ``negative``); the channels run together in batches of up to ``max_batch`` images.
    Results come back positive ones first, in the order of ``channels``.

    ``size``: the side of the picture (what is saved). ``input_size``: what the network
    sees at every step (the model's crop size; None: lucent's sizes around the picture,
    not resized, the former method). ``resize_to``: what the picture is resized to
    first, as the photos' view resizes it (256 for ImageNet models; None:
    ``input_size``); the random transforms then crop ``input_size`` out of it. ``view``:
    the preprocessing the numbers are measured through, from each saved 8-bit picture
    to a normalised [3, H, W] tensor (``photo_view(model.preprocessing)``: as the
    photos are measured); None: the picture resized as in the loop, normalised with
    ``mean``/``std``.
    """
    jobs = [(c, 1) for c in channels] + ([(c, -1) for c in channels] if negative else [])
    results: list[Visualisation] = []
    network = None if input_size is None else pair(input_size)
    resized = pair(resize_to) if resize_to is not None else network or pair(size)
    shape = _Shape(pair(size), resized, network)
    probe = LayerProbe(module, layer)
    with probe.open(), deterministic(device):
        for start in range(0, len(jobs), max(1, max_batch)):
            chunk = jobs[start : start + max(1, max_batch)]
            # One generator per batch, seeded from --seed and the batch's place: a
            # run is repeatable whatever else the report contains.
            generator = torch.Generator().manual_seed(seed * 1_000_003 + start)
            results.extend(
                _optimise_batch(probe, chunk, mean, std, steps, shape, view, device, lr, generator)
            )
    return results


@dataclass(frozen=True)
class _Shape:
    picture: tuple[int, int]  # (height, width) of the optimised and saved picture
    resized: tuple[int, int]  # what it is resized to before the transforms
    network: tuple[int, int] | None  # what the transforms crop out for the network


def _optimise_batch(
    probe: LayerProbe,
    jobs: list[tuple[int, int]],
    mean: Sequence[float],
    std: Sequence[float],
    steps: int,
    shape: _Shape,
    view: Callable[[np.ndarray], torch.Tensor] | None,
    device: Any,
    lr: float,
    generator: torch.Generator,
) -> list[Visualisation]:
    count = len(jobs)
    image = fourier_image(count, shape.picture, generator, device)
    resize = Resize(shape.picture, shape.resized, device)
    optimiser = torch.optim.Adam([image.spectrum], lr=lr)
    centre = torch.tensor(list(mean), device=device).view(1, 3, 1, 1)
    spread = torch.tensor(list(std), device=device).view(1, 3, 1, 1)
    rows = torch.arange(count, device=device)
    index = torch.tensor([c for c, _ in jobs], device=device)
    signs = torch.tensor([float(s) for _, s in jobs], device=device)
    for _ in range(steps):
        optimiser.zero_grad(set_to_none=True)
        moved = random_transform(resize(image.rgb()), generator, shape.network)
        batch = (moved - centre) / spread
        means = probe(batch)
        if int(index.max()) >= means.shape[1]:
            raise UsageError(
                f"channel {int(index.max())} is out of range: layer {probe.layer!r} has "
                f"{means.shape[1]} channels"
            )
        loss = -(signs * means[rows, index]).sum()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        pixels = to_uint8(image.rgb())
        if view is not None:
            measured = torch.stack([view(p) for p in pixels]).float().to(device)
        else:
            saved = torch.from_numpy(pixels).to(device).permute(0, 3, 1, 2).float() / 255.0
            measured = (resize(saved) - centre) / spread
        means = probe(measured).float().cpu()
    results = []
    channel_count = means.shape[1]
    for b, (channel, sign) in enumerate(jobs):
        row = means[b]
        own = float(row[channel])
        others = (float(row.sum()) - own) / max(1, channel_count - 1)
        results.append(Visualisation(channel, sign, pixels[b], own, others))
    return results
