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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.utils.deterministic

from reportgen.errors import UsageError
from reportgen.nn.fv_image import (
    Resize,
    fourier_image,
    pair,
    random_transform,
)
from reportgen.nn.hooks import ForwardHooks

log = logging.getLogger("reportgen")

# lucent's 0.05 over its 512 steps; twice that over our 256 covers the same ground
# (measured: benchmarks/featurevis_bench.py; docs/feature-vis.md).
LEARNING_RATE = 0.1
# Images optimised in one batch; a layer with more chosen channels runs in several batches.
MAX_BATCH = 64
# PyTorch's deterministic mode fills every new tensor with NaN (to expose reads of
# uninitialised memory); the optimisation reads none, so it is off in ``deterministic``:
# the same pixels, a little less time per step (2% measured on the CPU: docs/feature-vis.md).
FILL_UNINITIALIZED_MEMORY = False
# --fv-diversity: the weight of the penalty on the similarity of a channel's pictures.
# Lucid's and lucent's example (``channel - 1e2 * diversity``, on InceptionV1, whose
# channel means are far larger) overwhelms the channel on MobileNetV2: at 1e2 the
# pictures barely beat random noise; at 1 they keep more than half the drive of
# pictures optimised alone while their Gram similarity falls about 6-fold (measured:
# docs/feature-vis.md, "Diversity").
DIVERSITY_WEIGHT = 1.0


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
        self.keep_maps = False  # also keep the whole output (``maps``): --fv-diversity
        self.maps: torch.Tensor | None = None

    def _hook(self, _name: str, _module: torch.nn.Module, _inputs: Any, output: Any) -> None:
        if not isinstance(output, torch.Tensor) or output.dim() < 2:
            return
        values = output.float()
        self.maps = values if self.keep_maps else None
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
    image: np.ndarray  # uint8 [H, W, 3], as the saved file decodes
    activation: float  # the channel's mean activation on ``image``, through ``view``
    others_mean: float  # mean over the layer's other channels of their mean, the same
    saved: bytes | None = None  # the file (``Recipe.saved``); None: not encoded here


def to_uint8(rgb: torch.Tensor) -> np.ndarray:
    """[B, 3, H, W] in [0, 1] -> uint8 [B, H, W, 3], rounded as saved."""
    array = rgb.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8)
    return array.permute(0, 2, 3, 1).cpu().numpy()


@dataclass(frozen=True)
class Recipe:
    """How a layer's pictures are optimised and measured.

    ``mean``/``std``: the model's normalisation. ``size``: the side of the picture (what
    is saved). ``input_size``: what the network sees at every step (the model's crop
    size; None: lucent's sizes around the picture, not resized, the former method).
    ``resize_to``: what the picture is resized to first, as the photos' view resizes it
    (256 for ImageNet models; None: ``input_size``); the random transforms then crop
    ``input_size`` out of it. ``view``: the preprocessing the numbers are measured
    through, from each saved 8-bit picture to a normalised [3, H, W] tensor
    (``photo_view(model.preprocessing)``: as the photos are measured); None: the picture
    resized as in the loop, normalised with ``mean``/``std``. ``negative``: also a
    suppressing picture per channel. ``max_batch``: pictures optimised together (a
    channel's ``diversity`` pictures always in one batch). ``diversity``: pictures per
    channel that drive it while differing from each other (``diversity_penalty``).
    ``saved``: an 8-bit picture to its file and what that file decodes to (a lossy
    codec's round trip): the numbers are measured on the decoded pixels, the picture
    the report shows; None: on the 8-bit pixels themselves.
    """

    mean: Sequence[float] = (0.485, 0.456, 0.406)
    std: Sequence[float] = (0.229, 0.224, 0.225)
    steps: int = 256
    size: int = 256
    input_size: int | Sequence[int] | None = None
    resize_to: int | Sequence[int] | None = None
    view: Callable[[np.ndarray], torch.Tensor] | None = None
    seed: int = 0
    device: Any = "cpu"
    negative: bool = False
    lr: float = LEARNING_RATE
    max_batch: int = MAX_BATCH
    diversity: int = 1  # pictures per channel, kept apart by ``diversity_penalty``
    diversity_weight: float = DIVERSITY_WEIGHT
    saved: Callable[[np.ndarray], tuple[bytes, np.ndarray]] | None = None

    def shape(self) -> _Shape:
        network = None if self.input_size is None else pair(self.input_size)
        resized = pair(self.resize_to) if self.resize_to is not None else network
        return _Shape(pair(self.size), resized or pair(self.size), network)


def batches(channels: Sequence[int], recipe: Recipe) -> list[tuple[int, list[tuple[int, int]]]]:
    """The batches a layer's pictures are optimised in: (place, jobs), each job a
    (channel, sign) pair, positive pictures first, in the order of ``channels``, up to
    ``recipe.max_batch`` a batch. A batch's place (its first job's index) seeds it:
    its pictures depend on ``--seed`` and what the batch holds, on nothing else."""
    groups = [[(c, 1)] * max(1, recipe.diversity) for c in channels]
    if recipe.negative:
        groups += [[(c, -1)] for c in channels]
    found: list[tuple[int, list[tuple[int, int]]]] = []
    start, current = 0, list[tuple[int, int]]()
    for group in groups:  # a channel's diverse pictures never straddle two batches
        if current and len(current) + len(group) > max(1, recipe.max_batch):
            found.append((start, current))
            start, current = start + len(current), []
        current = current + group
    if current:
        found.append((start, current))
    return found


def diversity_penalty(maps: torch.Tensor, jobs: Sequence[tuple[int, int]]) -> torch.Tensor:
    """The diversity term of Olah et al. (Distill 2017), as lucent defines it: for each
    channel's run of pictures in the batch (consecutive equal jobs), the sum over pairs
    i != j of the cosine similarity of their Gram matrices at the layer (the layer's
    output [C, H*W] times its transpose, each normalised to unit Frobenius norm).
    Lucent's objective is minus this over the pictures' count; the loss here sums the
    pictures' activations rather than averaging them, so it adds this sum itself."""
    total = maps.new_zeros(())
    flat = maps.flatten(2) if maps.dim() > 2 else maps.unsqueeze(-1)  # [B, C, H*W]
    index = 0
    while index < len(jobs):
        end = index
        while end < len(jobs) and jobs[end] == jobs[index]:
            end += 1
        if end - index > 1:
            group = flat[index:end]
            grams = torch.nn.functional.normalize(
                torch.bmm(group, group.transpose(1, 2)).flatten(1), dim=1
            )
            similarity = grams @ grams.T
            total = total + similarity.sum() - similarity.diagonal().sum()
        index = end
    return total


def visualise(
    module: torch.nn.Module, layer: str, channels: Sequence[int], recipe: Recipe
) -> list[Visualisation]:
    """Optimise one image per channel (and per channel a suppressing one with
    ``recipe.negative``); the channels run together in batches of up to
    ``recipe.max_batch`` images. Results come back positive ones first, in the order of
    ``channels``."""
    results: list[Visualisation] = []
    for start, jobs in batches(channels, recipe):
        results.extend(visualise_batch(module, layer, start, jobs, recipe))
    return results


def visualise_batch(
    module: torch.nn.Module,
    layer: str,
    start: int,
    jobs: Sequence[tuple[int, int]],
    recipe: Recipe,
) -> list[Visualisation]:
    """One batch of ``batches``: a unit of work that any process holding the model can
    do (the client, a Dask worker, a shard), with the same pixels."""
    probe = LayerProbe(module, layer)
    with probe.open(), deterministic(recipe.device):
        # One generator per batch, seeded from --seed and the batch's place: a
        # run is repeatable whatever else the report contains.
        generator = torch.Generator().manual_seed(recipe.seed * 1_000_003 + start)
        return _optimise_batch(probe, list(jobs), recipe, generator)


@dataclass(frozen=True)
class _Shape:
    picture: tuple[int, int]  # (height, width) of the optimised and saved picture
    resized: tuple[int, int]  # what it is resized to before the transforms
    network: tuple[int, int] | None  # what the transforms crop out for the network


def _optimise_batch(
    probe: LayerProbe,
    jobs: list[tuple[int, int]],
    recipe: Recipe,
    generator: torch.Generator,
) -> list[Visualisation]:
    """One batch of pictures, each driving (sign +1) or suppressing (-1) its channel,
    optimised together, then measured in a clean pass."""
    device, shape = recipe.device, recipe.shape()
    image = fourier_image(len(jobs), shape.picture, generator, device)
    resize = Resize(shape.picture, shape.resized, device)
    centre = torch.tensor(list(recipe.mean), device=device).view(1, 3, 1, 1)
    spread = torch.tensor(list(recipe.std), device=device).view(1, 3, 1, 1)

    def normalised(rgb: torch.Tensor) -> torch.Tensor:
        return (rgb - centre) / spread

    optimiser = torch.optim.Adam([image.spectrum], lr=recipe.lr)
    diverse = len(set(jobs)) < len(jobs)
    probe.keep_maps = diverse
    rows = torch.arange(len(jobs), device=device)
    index = torch.tensor([c for c, _ in jobs], device=device)
    signs = torch.tensor([float(s) for _, s in jobs], device=device)
    for _ in range(recipe.steps):
        optimiser.zero_grad(set_to_none=True)
        means = probe(normalised(random_transform(resize(image.rgb()), generator, shape.network)))
        if int(index.max()) >= means.shape[1]:
            raise UsageError(
                f"channel {int(index.max())} is out of range: layer {probe.layer!r} has "
                f"{means.shape[1]} channels"
            )
        loss = -(signs * means[rows, index]).sum()
        if diverse and probe.maps is not None:
            loss = loss + recipe.diversity_weight * diversity_penalty(probe.maps, jobs)
        loss.backward()
        optimiser.step()
    probe.keep_maps, probe.maps = False, None
    with torch.no_grad():
        pixels = to_uint8(image.rgb())
        files: list[bytes | None] = [None] * len(jobs)
        if recipe.saved is not None:
            encoded = [recipe.saved(p) for p in pixels]
            files = [data for data, _ in encoded]
            pixels = np.stack([decoded for _, decoded in encoded])
        if recipe.view is not None:
            measured = torch.stack([recipe.view(p) for p in pixels]).float().to(device)
        else:
            saved = torch.from_numpy(pixels).to(device).permute(0, 3, 1, 2).float() / 255.0
            measured = normalised(resize(saved))
        means = probe(measured).float().cpu()
    return _measured(jobs, pixels, means, files)


def _measured(
    jobs: list[tuple[int, int]],
    pixels: np.ndarray,
    means: torch.Tensor,
    files: Sequence[bytes | None],
) -> list[Visualisation]:
    """Each picture with its channel's mean and the mean of the layer's other channels."""
    results = []
    channel_count = means.shape[1]
    for b, (channel, sign) in enumerate(jobs):
        row = means[b]
        own = float(row[channel])
        others = (float(row.sum()) - own) / max(1, channel_count - 1)
        results.append(Visualisation(channel, sign, pixels[b], own, others, files[b]))
    return results
