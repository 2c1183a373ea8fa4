"""The explanation methods, declared once: what each takes from a batch's forward and
backward pass, what it records per input, how that is stored, where the manifest lists
it and which page section shows it (map methods: their overlays side by side on input
pages; contributions: statistics-file fields and the layer page's exactness note).
Every stage iterates over ``methods()``: the batch pass (``reportgen.compute.batch``)
asks each enabled method what it needs and hands it the pass, the cache entry and the
results carry its record, the report stage gives it a picture path and a manifest key.

No torch here: the computations are the network stage's (``reportgen.nn.cams``, one
small subclass of ``reportgen.nn.cam_base.CamMethod`` per map method;
``reportgen.nn.gradients.contributions``), under the same names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# Where a method needs each layer's value and the gradient of the class logit there:
# at the one CAM layer (--gradcam-layer), or at every recorded layer.
Needs = Literal["cam_layer", "recorded_layers"]
# What it records per input: a map at the CAM layer per class kind (``CamResult``, an
# overlay picture, a manifest entry per input), or fields of each layer's statistics.
Record = Literal["map", "statistics"]


@dataclass(frozen=True)
class ExplanationMethod:
    name: str  # its --cam value (map methods), cache and picture name, manifest key
    title: str  # as pages name it
    needs: Needs
    record: Record
    # Map methods: the report folder of its overlays (``models/<id>/<folder>/<input>.jpg``);
    # pages show them with the other maps, titled (``templates/insights.html``,
    # ``cam_figures``).
    folder: str = ""
    # Statistics methods: the statistics fields it adds (``reportgen.statistics``).
    fields: tuple[str, ...] = ()


GRADCAM = ExplanationMethod("gradcam", "Grad-CAM", "cam_layer", "map", folder="gradcam")
LAYERCAM = ExplanationMethod("layercam", "LayerCAM", "cam_layer", "map", folder="layercam")
# The contributions' statistics fields (``reportgen.statistics`` lists them after the
# positions): to the top class's logit, to the --target-class's.
CONTRIBUTION_FIELDS = ("contribution", "target_contribution")
CONTRIBUTIONS = ExplanationMethod(
    "contributions",
    "channel contributions",
    "recorded_layers",
    "statistics",
    fields=CONTRIBUTION_FIELDS,
)

METHODS: tuple[ExplanationMethod, ...] = (GRADCAM, LAYERCAM, CONTRIBUTIONS)


def methods() -> tuple[ExplanationMethod, ...]:
    """Every method, in the order pages and the manifest show them."""
    return METHODS


def method(name: str) -> ExplanationMethod:
    for candidate in methods():
        if candidate.name == name:
            return candidate
    raise KeyError(name)


def map_methods() -> tuple[ExplanationMethod, ...]:
    """The methods that draw a map at the CAM layer: the values of --cam."""
    return tuple(m for m in methods() if m.record == "map")


def map_method_names() -> tuple[str, ...]:
    return tuple(m.name for m in map_methods())
