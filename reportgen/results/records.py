"""The typed records that cross stage boundaries. Plain data (numpy arrays, bytes), no torch.

* ``ModelFacts`` and ``LayerFacts``: what the network stage found out about a model and
  its chosen layers (names, shapes, weights, receptive fields), once per model.
* ``InputResult``: everything one input gives for one model: top-5 predictions, Grad-CAM,
  per layer the per-channel statistics, the channels selected and the value range, and the
  encoded pictures (network view, Grad-CAM overlays, map sheets or maps, overlays).
  It is independent of every other input: it is what the cache stores, and what a shard
  computed elsewhere sends back.
* ``PictureKey``: a picture's name, independent of where a report puts it (the report stage
  maps keys to paths).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from reportgen.analysis.weights import StrongestInputs
from reportgen.nn.channel_stats import ChannelStats
from reportgen.statistics import file_fields

GRADCAM_TOP = "top prediction"
GRADCAM_TARGET = "target class"


def channel_label(index: int, *, spatial: bool, label: str | None = None) -> str:
    """How every page (and the notebook view) names a channel: "channel 12" in a layer of
    maps; in a layer of units "unit 450: bobsled" where the unit is a class (``label``),
    else "unit 450"."""
    if spatial:
        return f"channel {index}"
    return f"unit {index}: {label}" if label is not None else f"unit {index}"


@dataclass(frozen=True)
class PictureKey:
    """Which picture: ``kind`` with the layer, channel and part it belongs to.

    kinds: ``view``, ``gradcam`` (part: the Grad-CAM kind), ``sheet``, ``map``, ``overlay``,
    ``filter`` (part: rgb/r/g/b/mean), ``examples``,
    ``featurevis`` (part: max/min) of a channel.
    """

    kind: str
    layer: str = ""
    channel: int = -1
    part: str = ""

    def token(self) -> str:
        """A one-string form, for the cache's blob names."""
        return "\x1f".join((self.kind, self.layer, str(self.channel), self.part))

    @classmethod
    def from_token(cls, token: str) -> PictureKey:
        kind, layer, channel, part = token.split("\x1f")
        return cls(kind, layer, int(channel), part)


@dataclass(frozen=True)
class DirectEffect:
    """What one channel of the layer pooled into the final Linear does to the logits, with
    nothing in between: the classes whose weight on its pooled value is highest and lowest,
    as (class index, weight), strongest first."""

    raises: tuple[tuple[int, float], ...]
    lowers: tuple[tuple[int, float], ...]


@dataclass(frozen=True)
class LayerFacts:
    """A chosen layer of a model, as the network stage found it."""

    name: str
    type: str
    value: str  # what a recorded value is, e.g. "output of Conv2d, before ReLU"
    output_shape: tuple[int, ...]
    spatial: bool  # maps: [C, H, W] output with H x W > 1 (else units: [C] or [C, 1, 1])
    weight: np.ndarray | None = None  # Conv2d kernels [out, in/groups, kh, kw]
    receptive_field: int | None = None  # side of an output cell's field, in view pixels
    # The weights view (Conv2d whose input is not the image; reportgen.nn.wiring): the
    # recorded layer whose channels are its input channels, else the nearest module
    # whose output it reads; per output channel its strongest input channels.
    groups: int = 1
    reads_image: bool = False
    input_layer: str | None = None
    input_module: str | None = None
    input_through: tuple[str, ...] = ()  # types of the per-channel modules in between
    strongest: StrongestInputs | None = None
    # Its units are the model's classes: their names (the model's categories), else ().
    class_labels: tuple[str, ...] = ()
    # Every map cell's receptive field covers the whole view: a dataset example is the
    # input's network view itself, not a crop (as for units).
    field_covers_view: bool = False
    # Its output is global-average-pooled straight into the model's final Linear: an
    # input's contributions here sum exactly to its logit minus the bias; per channel,
    # its direct effect on the logits (the Linear's weights). Else False and None.
    exact_contributions: bool = False
    direct_effects: tuple[DirectEffect, ...] | None = None

    @property
    def examples_are_views(self) -> bool:
        """A dataset example is the input's whole network view (units; maps whose every
        cell sees the whole view): nothing to crop."""
        return not self.spatial or self.field_covers_view

    def unit_label(self, unit: int) -> str:
        """A unit as people name it: "unit 450: bobsled" for classes, else "unit 450"."""
        label = self.class_labels[unit] if 0 <= unit < len(self.class_labels) else None
        return channel_label(unit, spatial=False, label=label)

    @property
    def channels(self) -> int:
        return int(self.output_shape[0])

    @property
    def filter_informative(self) -> bool:
        """A filter picture says something: over RGB (colour), or a kernel over 1x1 (a
        1x1 kernel's mean, scaled over its own range, is one mid-grey pixel)."""
        if self.weight is None:
            return False
        return self.filter_parts[0] == "rgb" or self.weight[0, 0].size > 1

    @property
    def filter_parts(self) -> tuple[str, ...]:
        """How each channel's filter is drawn: first-layer kernels (over RGB) in colour and
        as R, G and B apart; deeper ones as the mean over their input channels."""
        if self.weight is None:
            return ()
        return ("rgb", "r", "g", "b") if self.weight.shape[1] == 3 else ("mean",)


@dataclass(frozen=True)
class ModelFacts:
    """A loaded model, described without torch."""

    id: str
    name: str
    weights: str
    weights_detail: str
    preprocessing: str
    notes: tuple[str, ...]
    label: str
    categories: tuple[str, ...] | None
    view_size: tuple[int, int]  # (width, height) of the network's view
    layers: tuple[LayerFacts, ...] = ()
    # The contribution fields its per-input results carry (``reportgen.statistics``).
    contribution_fields: tuple[str, ...] = ()

    @property
    def stats_fields(self) -> tuple[str, ...]:
        """The fields of its statistics files and of its results' cache entries."""
        return file_fields(self.contribution_fields)

    def class_label(self, index: int) -> str:
        if self.categories and 0 <= index < len(self.categories):
            return self.categories[index]
        return f"class {index}"


@dataclass(frozen=True)
class GradCamResult:
    kind: str  # GRADCAM_TOP or GRADCAM_TARGET
    class_index: int
    layer: str
    map: list[list[float]]  # layer resolution, scaled to 0..1, rounded to 6 places


@dataclass
class LayerResult:
    stats: ChannelStats
    selected: list[int]
    value_range: tuple[float, float] | None = None  # finite (min, max); spatial layers only


@dataclass
class InputResult:
    input_id: str
    predictions: list[tuple[int, float]]  # top-5: (class index, probability)
    gradcam: list[GradCamResult] = field(default_factory=list)  # top class first
    layers: dict[str, LayerResult] = field(default_factory=dict)
    pictures: dict[PictureKey, bytes] = field(default_factory=dict)

    def without_pictures(self) -> InputResult:
        """The same result with its pictures dropped (once they are written)."""
        return InputResult(self.input_id, self.predictions, self.gradcam, self.layers, {})
