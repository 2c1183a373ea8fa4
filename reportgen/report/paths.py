"""Where each file of a report lives. Stable, readable, collision-free names."""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache

INDEX = "index.html"
MANIFEST = "manifest.json"
ASSETS = "assets"


def _safe(name: str) -> str:
    """A path segment made of safe characters; a hash suffix marks any change."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]", "_", name).strip(".") or "_"
    if cleaned != name:
        cleaned += "-" + hashlib.sha256(name.encode()).hexdigest()[:6]
    return cleaned


def channel_name(index: int) -> str:
    return f"c{index:04d}"


def input_thumbnail(input_id: str) -> str:
    return f"inputs/{input_id}.jpg"


def model_dir(model_id: str) -> str:
    return f"models/{_safe(model_id)}"


def model_page(model_id: str) -> str:
    return f"{model_dir(model_id)}/index.html"


def compare_page(model_id: str) -> str:
    return f"{model_dir(model_id)}/compare.html"


def model_view(model_id: str, input_id: str) -> str:
    return f"{model_dir(model_id)}/views/{input_id}.jpg"


def layer_dir(model_id: str, layer: str) -> str:
    return f"{model_dir(model_id)}/layers/{_safe(layer)}"


def layer_page(model_id: str, layer: str) -> str:
    return f"{layer_dir(model_id, layer)}/index.html"


def channel_page(model_id: str, layer: str, channel: int) -> str:
    return f"{layer_dir(model_id, layer)}/{channel_name(channel)}.html"


def map_image(model_id: str, layer: str, input_id: str, channel: int) -> str:
    return f"{layer_dir(model_id, layer)}/maps/{input_id}/{channel_name(channel)}.png"


def map_sheet(model_id: str, layer: str, input_id: str) -> str:
    return f"{layer_dir(model_id, layer)}/sheets/{input_id}.png"


def overlay_image(model_id: str, layer: str, input_id: str, channel: int) -> str:
    return f"{layer_dir(model_id, layer)}/overlays/{input_id}/{channel_name(channel)}.jpg"


def filter_image(model_id: str, layer: str, channel: int, part: str) -> str:
    return f"{layer_dir(model_id, layer)}/filters/{channel_name(channel)}-{part}.png"


def filter_sheet(model_id: str, layer: str, part: str) -> str:
    """Every channel's filter of a layer in one picture (part: rgb/r/g/b or mean)."""
    return f"{layer_dir(model_id, layer)}/filters-{part}.png"


def kernel_sheet(model_id: str, layer: str) -> str:
    """The kernel slices of every channel's weights view, in one picture."""
    return f"{layer_dir(model_id, layer)}/weights-kernels.png"


def cam_image(model_id: str, folder: str, input_key: str) -> str:
    """A map method's overlay (``reportgen.explanations``: its ``folder``)."""
    return f"{model_dir(model_id)}/{folder}/{input_key}.jpg"


def examples_image(model_id: str, layer: str, channel: int) -> str:
    return f"{layer_dir(model_id, layer)}/examples/{channel_name(channel)}.jpg"


def examples_sheet(model_id: str, layer: str, sheet: int) -> str:
    """The dataset examples of channels ``sheet * 16 ...`` (imaging.sheets.example_grid)."""
    return f"{layer_dir(model_id, layer)}/examples-{sheet:03d}.jpg"


def examples_firsts(model_id: str, layer: str) -> str:
    """Each channel's strongest dataset example (imaging.sheets.example_firsts_grid)."""
    return f"{layer_dir(model_id, layer)}/examples-first.jpg"


def input_page(model_id: str, input_id: str) -> str:
    """One input through one model: predictions, Grad-CAM, its channels of every layer."""
    return f"{model_dir(model_id)}/inputs/{input_id}.html"


def input_layer_page(model_id: str, layer: str, input_id: str) -> str:
    """A detail input at one layer: every channel's map and statistics."""
    return f"{layer_dir(model_id, layer)}/inputs/{input_id}.html"


def stats_file(model_id: str, layer: str) -> str:
    """Every input's per-channel statistics of a layer (numpy .npy)."""
    return f"{layer_dir(model_id, layer)}/stats.npy"


def gallery_page(model_id: str | None, number: int) -> str:
    """Page ``number`` (1-based) of an inputs gallery: the report's or a model's. The
    first page of the report's is the index; of a model's, the model page."""
    if model_id is None:
        return INDEX if number == 1 else f"gallery/page-{number}.html"
    if number == 1:
        return model_page(model_id)
    return f"{model_dir(model_id)}/gallery/page-{number}.html"


def classes_page(model_id: str) -> str:
    """The classes index of a model: every class that is some input's top prediction."""
    return f"{model_dir(model_id)}/classes/index.html"


def class_page(model_id: str, class_index: int, number: int = 1) -> str:
    """A class's page; ``number`` > 1: a further page of its inputs' gallery."""
    suffix = "" if number == 1 else f"-{number}"
    return f"{model_dir(model_id)}/classes/k{class_index:04d}{suffix}.html"


def featurevis_image(model_id: str, layer: str, channel: int, kind: str) -> str:
    """A channel's feature visualisation: ``max`` excites it, ``min`` suppresses it."""
    return f"{layer_dir(model_id, layer)}/featurevis/{channel_name(channel)}-{kind}.webp"


def featurevis_sheet(model_id: str, layer: str) -> str:
    """Each visualised channel's picture as a small tile, channel c at tile c
    (imaging.fv_pictures.sheet_grid): what a layer page's cards show."""
    return f"{layer_dir(model_id, layer)}/featurevis.jpg"


def comparison_page() -> str:
    return "comparison.html"


@lru_cache(maxsize=4096)
def _up_and_down(target_dir: str, start_dir: str) -> str:
    """The relative folder path from ``start_dir`` to ``target_dir`` (both root-relative)."""
    target_parts = target_dir.split("/") if target_dir else []
    start_parts = start_dir.split("/") if start_dir else []
    common = 0
    for a, b in zip(target_parts, start_parts):
        if a != b:
            break
        common += 1
    parts = [".."] * (len(start_parts) - common) + target_parts[common:]
    return "/".join(parts) + "/" if parts else ""


def relative(target: str, from_page: str) -> str:
    """Link from one report file to another, both given relative to the report root.

    Report paths are normalised (no '.', '..' or leading '/'), so plain string work
    does what posixpath.relpath does, many times faster (a report has many links).
    """
    target_path, hash_, anchor = target.partition("#")
    if not target_path:
        return f"#{anchor}"
    target_dir, _, name = target_path.rpartition("/")
    start_dir = from_page.rpartition("/")[0]
    link = _up_and_down(target_dir, start_dir) + name
    return f"{link}{hash_}{anchor}"
