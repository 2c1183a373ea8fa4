"""The map methods' computations by name (``reportgen.explanations.map_methods``)."""

from __future__ import annotations

from reportgen.nn.cam_base import CamMethod
from reportgen.nn.gradcam import GradCam
from reportgen.nn.layercam import LayerCam

CAMS: dict[str, CamMethod] = {method.name: method for method in (GradCam(), LayerCam())}


def cam_method(name: str) -> CamMethod:
    """The computation of the map method ``name``."""
    return CAMS[name]
