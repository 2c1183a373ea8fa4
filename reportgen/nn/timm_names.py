"""How timm models are named: ``-m timm/NAME``. Kept apart from ``timm_models`` so that
torchvision's name check can point at timm without importing the model code."""

from __future__ import annotations

PREFIX = "timm/"


def is_timm(name: str) -> bool:
    return name.startswith(PREFIX)


def timm_hint(name: str) -> str:
    """For a name that is not torchvision's or is written ``timm:NAME``: where timm is
    installed and knows it, how to ask for timm's model; else nothing."""
    bare = name.split(":", 1)[1] if name.startswith("timm:") else name
    try:
        import timm
    except ImportError:
        return ""
    if bare.partition(".")[0] in timm.list_models():
        return f"; timm has it: -m {PREFIX}{bare}"
    return ""
