"""A full report built through the CLI, checked page by page and against an
independent forward pass of the same (seeded, random) network."""

from __future__ import annotations

import dataclasses
import hashlib
import html
import io
import json
import math
import posixpath
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.models import AlexNet_Weights, alexnet

from reportgen.imaging.sheets import SheetGrid
from reportgen.report.manifest_file import channel_page, layer_channels
from reportgen.settings import RUNTIME_FIELDS, RunSettings
from tests.helpers import invoke, map_tile, weights_view_of

pytestmark = pytest.mark.slow

EVIL_NAME = '"><img src=x onerror=alert(1)>&amp;.png'
LAYERS = ("features.0", "features.3", "classifier.6")
TOP_K = 3


@dataclasses.dataclass
class Built:
    root: Path
    images: Path
    stdout: str
    manifest: dict[str, Any]


def _make_images(folder: Path) -> None:
    folder.mkdir()
    rng = np.random.default_rng(7)
    noise = rng.integers(0, 256, size=(48, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(folder / "noise.png")
    y, x = np.mgrid[0:200, 0:300]
    gradient = np.stack([x * 255 // 299, y * 255 // 199, (x + y) % 256], axis=-1)
    Image.fromarray(gradient.astype(np.uint8)).save(folder / "gradient.jpg", quality=95)
    Image.fromarray(rng.integers(0, 256, size=(40, 40, 3), dtype=np.uint8)).save(folder / EVIL_NAME)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    base = tmp_path_factory.mktemp("e2e")
    images = base / "images"
    _make_images(images)
    root = base / "report"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("REPORTGEN_OFFLINE", "1")
        patch.setenv("REPORTGEN_CACHE_DIR", "off")  # computed, never replayed
        patch.setenv("TORCH_HOME", str(base / "torch-home"))
        patch.chdir(base)
        # --jobs 2: pages are rendered by forked workers whatever the machine's core count
        args = ["run", "images", "-m", "alexnet", "--weights", "none", "--seed", "0", "--jobs", "2"]
        for layer in LAYERS:
            args += ["-l", layer]
        result = invoke(*args, "--top-k", str(TOP_K), "-o", "report", catch_exceptions=False)
    assert result.exit_code == 0, result.output
    manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    return Built(root, images, result.stdout, manifest)


# --- structure of the site ------------------------------------------------------------------


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _text(path: Path) -> list[str]:
    """The text of a page, as a browser shows it (entities decoded)."""
    parser = _Text()
    parser.feed(path.read_text(encoding="utf-8"))
    parser.close()
    return parser.text


# A start tag and its attributes. The pages are many (one per channel), so they are
# tokenised with regular expressions, much faster than html.parser.
TAG = re.compile(
    r"<([a-zA-Z][\w-]*)((?:\s+[^\s=>/]+(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s>]+))?)*)\s*/?>"
)
ATTRIBUTE = re.compile(r"([^\s=>/]+)(?:\s*=\s*(?:\"([^\"]*)\"|'([^']*)'|([^\s>]+)))?")


@dataclasses.dataclass
class _Page:
    tags: list[tuple[str, dict[str, str | None]]]
    ids: set[str]


_parsed: dict[Path, _Page] = {}


def _parse(path: Path) -> _Page:
    if path not in _parsed:
        tags: list[tuple[str, dict[str, str | None]]] = []
        ids: set[str] = set()
        for name, attribute_text in TAG.findall(path.read_text(encoding="utf-8")):
            attrs: dict[str, str | None] = {}
            for key, double, single, bare in ATTRIBUTE.findall(attribute_text):
                value = double or single or bare
                attrs[key.lower()] = html.unescape(value) if "&" in value else value
            tags.append((name.lower(), attrs))
            ids.update(str(attrs[k]) for k in ("id", "name") if attrs.get(k))
        _parsed[path] = _Page(tags, ids)
    return _parsed[path]


TILE_PLACE = re.compile(r"\btc(\d+)\b.*\btr(\d+)\b")


def _map_pictures(page: _Page) -> list[tuple[str, int, int, str]]:
    """The maps a page shows, in order, as (sheet src, column, row, classes): each is a
    <span class="tile ... tcI trJ"> holding the <img> of a whole sheet."""
    found = []
    for (tag, attrs), (next_tag, next_attrs) in zip(page.tags, page.tags[1:]):
        classes = str(attrs.get("class") or "")
        if tag == "span" and "tile" in classes.split():
            assert next_tag == "img", "a tile holds its sheet's <img>"
            place = TILE_PLACE.search(classes)
            assert place, classes
            found.append(
                (str(next_attrs.get("src")), int(place.group(1)), int(place.group(2)), classes)
            )
    return found


def _cell(entry: dict[str, Any], channel: int) -> tuple[int, int]:
    return channel % entry["columns"], channel // entry["columns"]


def _pages(root: Path) -> list[Path]:
    return sorted(root.rglob("*.html"))


URL_ATTRIBUTES = ("href", "src", "action", "poster", "data", "formaction", "cite", "background")


def _references(page: _Page) -> Iterator[tuple[str, str]]:
    for tag, attrs in page.tags:
        for name in URL_ATTRIBUTES:
            value = attrs.get(name)
            if value is not None:
                yield tag, value
        for name in ("srcset", "imagesrcset"):
            if attrs.get(name):
                for candidate in str(attrs[name]).split(","):
                    yield tag, candidate.strip().split(" ")[0]


def test_report_was_written(built: Built) -> None:
    assert "index.html" in built.stdout and "3 inputs" in built.stdout
    for name in ("index.html", "manifest.json", "assets/style.css"):
        assert (built.root / name).is_file()
    assert not list(built.root.parent.glob(".report.reportgen-*"))  # no staging leftovers


def test_every_link_and_image_resolves_inside_the_report(built: Built) -> None:
    root = built.root
    files = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    assert not [p for p in root.rglob("*") if p.is_symlink()]  # so a path stays inside
    pages = _pages(root)
    assert len(pages) > 200
    checked = 0
    for path in pages:
        here = path.relative_to(root).as_posix()
        folder = posixpath.dirname(here)
        for tag, url in _references(_parse(path)):
            where = f"{here}: <{tag}> {url!r}"
            assert url.strip(), f"{where}: empty link"
            parts = urlsplit(url)
            assert not parts.scheme, f"{where} is not relative"
            assert not parts.netloc, f"{where} points to another host"
            assert not parts.path.startswith("/"), f"{where} is absolute"
            target = posixpath.normpath(posixpath.join(folder, unquote(parts.path)))
            if not parts.path:
                target = here
            assert target != ".." and not target.startswith("../"), f"{where} leaves the report"
            assert target in files, f"{where}: {target} does not exist"
            checked += 1
    assert checked > 5000


def _broken_anchors(root: Path) -> list[str]:
    broken = []
    for path in _pages(root):
        here = path.relative_to(root).as_posix()
        for tag, url in _references(_parse(path)):
            parts = urlsplit(url)
            if not parts.fragment or parts.scheme or parts.netloc:
                continue
            target = posixpath.normpath(
                posixpath.join(posixpath.dirname(here), unquote(parts.path)) if parts.path else here
            )
            file = root / target
            if file.suffix == ".html" and unquote(parts.fragment) not in _parse(file).ids:
                broken.append(f"{here}: <{tag}> {url!r}")
    return broken


def test_every_anchor_exists(built: Built) -> None:
    broken = _broken_anchors(built.root)
    assert not broken, broken[:5]


def test_nothing_is_loaded_from_elsewhere(built: Built) -> None:
    remote = re.compile(r"(https?:|ftp:)?//[a-z0-9.-]+\.[a-z]{2,}", re.I)
    for path in built.root.rglob("*"):
        if path.suffix in (".css", ".js"):
            text = path.read_text(encoding="utf-8")
            assert not remote.search(text), path
            for url in re.findall(r"url\(\s*['\"]?([^'\")]+)", text):
                assert url.startswith("data:") or (path.parent / url).resolve().is_file(), url
            assert "@import" not in text and "@font-face" not in text
    for path in _pages(built.root):
        for tag, attrs in _parse(path).tags:
            if tag == "script" and not attrs.get("src"):
                # Only inert data blocks may be inline; code comes from assets/.
                assert attrs.get("type") == "application/json", f"{path}: inline script"
            if tag == "link":
                assert not urlsplit(str(attrs.get("href", ""))).scheme


def test_html_file_name_is_escaped_everywhere(built: Built) -> None:
    for path in _pages(built.root):
        page = _parse(path)
        for tag, attrs in page.tags:
            assert "onerror" not in attrs, f"{path}: injected markup from a file name"
            if tag == "img":
                assert attrs.get("src") != "x", f"{path}: injected <img>"
    # (joined: a name may wrap where a <wbr> after its "." lets it)
    assert EVIL_NAME in "".join(_text(built.root / "index.html")), "shown as text"
    raw = (built.root / "index.html").read_text(encoding="utf-8")
    assert "&lt;img src=x onerror=alert(1)&gt;&amp;amp;.png" in raw


def test_every_page_has_breadcrumbs_and_a_title(built: Built) -> None:
    for path in _pages(built.root):
        page = _parse(path)
        tags = [tag for tag, _ in page.tags]
        assert "title" in tags and "nav" in tags, path
        if path.name != "index.html" or path.parent != built.root:
            hrefs = [attrs.get("href") for tag, attrs in page.tags if tag == "a"]
            assert any(h and h.endswith("index.html") for h in hrefs), path


def test_channel_pages_link_to_their_neighbours(built: Built) -> None:
    layer = built.root / "models/alexnet/layers/features.0"
    page = _parse(layer / "c0005.html")
    rels = {attrs.get("rel"): attrs.get("href") for tag, attrs in page.tags if tag == "a"}
    assert rels["prev"] == "c0004.html" and rels["next"] == "c0006.html"
    first = _parse(layer / "c0000.html")
    assert "prev" not in {attrs.get("rel") for tag, attrs in first.tags if tag == "a"}


# --- manifest -------------------------------------------------------------------------------


def test_manifest_has_the_documented_fields(built: Built) -> None:
    m = built.manifest
    assert isinstance(m["format"], str) and m["format"]
    assert m["generator"]["name"] == "reportgen" and m["generator"]["version"]
    assert set(m["environment"]) >= {"python", "torch", "torchvision", "device"}
    assert m["environment"]["torch"] == torch.__version__
    settings = m["settings"]
    assert settings["models"] == ["alexnet"] and settings["layers"] == list(LAYERS)
    assert settings["top_k"] == TOP_K and settings["weights"] == "none"
    assert settings["strategy"] == "top_mean" and settings["colormap"] == "jet"

    assert len(m["inputs"]) == 3
    for item in m["inputs"]:
        assert set(item) >= {"id", "source", "sha256", "width", "height"}
        source = built.images.parent / item["source"]
        assert item["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
        with Image.open(source) as image:
            assert (item["width"], item["height"]) == image.size
    ids = [item["id"] for item in m["inputs"]]
    assert len(set(ids)) == 3

    (model,) = m["models"]
    assert set(model) >= {"id", "name", "weights", "page", "predictions", "layers"}
    assert model["name"] == "alexnet" and "none" in model["weights"]
    assert (built.root / model["page"]).is_file()
    assert set(model["predictions"]) == set(ids)
    for predictions in model["predictions"].values():
        assert len(predictions) == 5
        probabilities = [p["probability"] for p in predictions]
        assert probabilities == sorted(probabilities, reverse=True)
        assert 0 < sum(probabilities) <= 1.0 + 1e-6
        for p in predictions:
            assert set(p) >= {"index", "label", "probability"}
            assert AlexNet_Weights.DEFAULT.meta["categories"][p["index"]] == p["label"]

    assert [layer["name"] for layer in model["layers"]] == list(LAYERS)
    shapes = {layer["name"]: layer["output_shape"] for layer in model["layers"]}
    assert shapes == {
        "features.0": [64, 55, 55],
        "features.3": [192, 27, 27],
        "classifier.6": [1000],
    }
    for layer in model["layers"]:
        assert set(layer) >= {"name", "type", "output_shape", "page", "selected", "channels"}
        assert (built.root / layer["page"]).is_file()
        assert set(layer["selected"]) == set(ids)
        assert len(layer["channels"]) == layer["output_shape"][0]
        for index, channel in enumerate(layer["channels"]):
            assert channel["index"] == index
            assert "page" not in channel  # the layer's channel_page says where
            assert (built.root / channel_page(layer, index)).is_file()
            assert set(channel["summary"]) == {
                "mean",
                "max",
                "min",
                "sparsity",
                "selected",
                "inputs",
                "best_rank",
                "first",
            }
        units = layer["name"] == "classifier.6"
        assert layer["units"] is units and layer["class_units"] is units
        labels = [channel.get("label") for channel in layer["channels"]]
        assert labels == (
            AlexNet_Weights.DEFAULT.meta["categories"] if units else [None] * len(labels)
        )
        fields = layer["stats_file"]["fields"]
        assert layer["stats_file"]["shape"] == [len(ids), layer["output_shape"][0], len(fields)]
        assert set(layer["detail_pages"]) == set(ids)  # a small run: every input in detail
        stats = _stats(built.root, built.manifest, layer)
        for input_id, chosen in layer["selected"].items():
            means = [s["mean"] for s in stats[input_id]]
            expected = sorted(range(len(means)), key=lambda c: (-means[c], c))[:TOP_K]
            assert chosen == expected


def test_manifest_pages_are_root_relative(built: Built) -> None:
    model = built.manifest["models"][0]
    for page in [model["page"], *(layer["page"] for layer in model["layers"])]:
        assert not page.startswith(("/", ".")) and "\\" not in page
        assert (built.root / page).resolve().is_relative_to(built.root.resolve())


def test_run_settings_fields_are_all_in_the_manifest(built: Built) -> None:
    # The output folder is where the report is, not how it was made.
    # How a run is carried out (jobs, cache, single file...) is not recorded either.
    fields = {f.name for f in dataclasses.fields(RunSettings)} - {"output", *RUNTIME_FIELDS}
    assert fields == set(built.manifest["settings"])


# --- values, against an independent forward pass ---------------------------------------------


@pytest.fixture(scope="module")
def reference(built: Built) -> dict[str, dict[str, torch.Tensor]]:
    """The same network (seed 0) run by hand on every input."""
    torch.manual_seed(0)
    model = alexnet(weights=None).eval()
    transforms = AlexNet_Weights.DEFAULT.transforms()
    results = {}
    for item in built.manifest["inputs"]:
        with Image.open(built.images.parent / item["source"]) as image:
            x = transforms(image.convert("RGB"))[None]
        with torch.no_grad():
            conv0 = model.features[0](x)
            features3 = model.features[:4](x)
            logits = model(x)
        results[item["id"]] = {
            "features.0": conv0[0],
            "features.3": features3[0],
            "classifier.6": logits[0],
        }
    return results


def _layer(built: Built, name: str) -> dict[str, Any]:
    return next(layer for layer in built.manifest["models"][0]["layers"] if layer["name"] == name)


def _stats(root: Path, manifest: dict[str, Any], layer: dict[str, Any]) -> dict[str, Any]:
    """Per input id, per channel, the statistics in the layer's statistics file (NaN is
    None), as {mean, max, min, std, sparsity, argmax: {map_yx}}."""
    table = np.load(root / layer["stats_file"]["path"])
    fields = layer["stats_file"]["fields"]
    result: dict[str, Any] = {}
    for row, entry in enumerate(manifest["inputs"]):
        per_channel = []
        for values in table[row].tolist():
            named = {f: (v if math.isfinite(v) else None) for f, v in zip(fields, values)}
            named["argmax"] = {"map_yx": [int(named["argmax_y"]), int(named["argmax_x"])]}
            per_channel.append(named)
        result[entry["id"]] = per_channel
    return result


@pytest.mark.parametrize("name", LAYERS)
def test_statistics_equal_an_independent_computation(
    built: Built, reference: dict[str, dict[str, torch.Tensor]], name: str
) -> None:
    layer = _layer(built, name)
    table = _stats(built.root, built.manifest, layer)
    for input_id, outputs in reference.items():
        values = outputs[name].double().numpy()
        planes = values.reshape(values.shape[0], -1)
        size = planes.shape[1]
        if name == "features.0":
            assert (planes < 0).any()  # before the in-place ReLU
        for channel in layer["channels"]:
            c = channel["index"]
            stats = table[input_id][c]
            plane = planes[c]
            assert stats["mean"] == pytest.approx(plane.mean(), rel=1e-4, abs=1e-5)
            assert stats["max"] == pytest.approx(plane.max(), rel=1e-4, abs=1e-5)
            assert stats["min"] == pytest.approx(plane.min(), rel=1e-4, abs=1e-5)
            if size > 1:
                assert stats["std"] == pytest.approx(plane.std(ddof=1), rel=1e-4, abs=1e-5)
            else:
                assert stats["std"] is None  # NaN is not JSON
            assert stats["sparsity"] == pytest.approx(np.mean(plane <= 0), abs=2.0 / size)
            y, x = stats["argmax"]["map_yx"]
            width = values.shape[-1] if values.ndim == 3 else 1
            assert plane[y * width + x] == pytest.approx(plane.max(), rel=1e-4, abs=1e-5)


def test_predictions_equal_an_independent_computation(
    built: Built, reference: dict[str, dict[str, torch.Tensor]]
) -> None:
    for input_id, outputs in reference.items():
        probabilities = torch.softmax(outputs["classifier.6"], dim=0)
        top = torch.topk(probabilities, 5)
        got = built.manifest["models"][0]["predictions"][input_id]
        assert [p["index"] for p in got] == top.indices.tolist()
        for p, expected in zip(got, top.values.tolist()):
            assert p["probability"] == pytest.approx(expected, rel=1e-3, abs=1e-6)


def test_activation_maps_are_true_resolution_pictures_of_the_values(
    built: Built, reference: dict[str, dict[str, torch.Tensor]]
) -> None:
    layer = _layer(built, "features.0")
    model = built.manifest["models"][0]
    layer_page = built.root / layer["page"]
    grid = layer["map_sheet"]
    assert (grid["channels"], grid["tile_height"], grid["tile_width"]) == (64, 55, 55)
    for input_id, outputs in reference.items():
        values = outputs["features.0"].numpy()
        sheet_path = layer["images"]["map_sheet"].format(input=input_id)
        with Image.open(built.root / sheet_path) as sheet:
            assert sheet.mode == "P"
            assert sheet.size == (grid["columns"] * 57, grid["rows"] * 57)
        detail = list(layer["detail_pages"])
        strip = SheetGrid.for_layer(len(detail), 55, 55, grid["pad"])
        for c in (0, 17, 63):
            # The channel page shows this input's tile of the channel's own strip (issue 25:
            # not the input's whole sheet), twice (the map, and over the view).
            page = _parse(built.root / channel_page(layer, c))
            shown = [
                (column, row)
                for src, column, row, _ in _map_pictures(page)
                if src.endswith(f"strips/c{c:04d}.png")
            ]
            expected = strip.cell(detail.index(input_id))
            assert shown.count(expected) == 2, f"channel {c} on {input_id}: {shown}"
            assert sorted(set(shown)) == sorted(strip.cell(d) for d in range(len(detail)))
            image = map_tile(built.root / sheet_path, grid, c)
            assert image.size == (55, 55)
            levels = np.asarray(image).astype(int)  # palette indices
            rgb = np.asarray(image.convert("RGB"))
            plane = values[c].astype(np.float64)
            low, high = plane.min(), plane.max()
            expected = np.rint((plane - low) / (high - low) * 255.0)
            assert np.abs(levels - expected).max() <= 1
            from reportgen.imaging.pictures import colormap_table

            np.testing.assert_array_equal(rgb, colormap_table("jet")[levels])
    # Overlays are composed by the browser (the map over the view the network saw): no
    # overlay files without --overlay-files.
    assert not (layer_page.parent / "overlays").exists()
    assert "overlay" not in layer["images"]
    for input_id in layer["selected"]:
        with Image.open(built.root / model["views"][input_id]) as view:
            assert view.size == (224, 224)


@pytest.fixture(scope="module")
def weights() -> dict[str, np.ndarray]:
    """The network's state_dict (seed 0, as the report's --weights none --seed 0)."""
    torch.manual_seed(0)
    return {k: v.numpy().astype(np.float64) for k, v in alexnet(weights=None).state_dict().items()}


def _own_range(kernel: np.ndarray) -> np.ndarray:
    return np.rint((kernel - kernel.min()) / (kernel.max() - kernel.min()) * 255.0)


def test_filters_are_one_sheet_per_layer_equal_to_the_weights(
    built: Built, weights: dict[str, np.ndarray]
) -> None:
    """No file per channel: one sheet per layer and part, whose tiles are the filters,
    each scaled over its own range (computed here from the state_dict)."""
    assert not list(built.root.rglob("filters/*"))
    first = built.root / "models/alexnet/layers/features.0"
    entry = _layer(built, "features.0")["kernels"]
    assert sorted(entry["filter_sheets"]) == ["b", "g", "r", "rgb"]
    kernels = weights["features.0.weight"]  # [64, 3, 11, 11]
    for c in (0, 17, 63):
        expected = _own_range(kernels[c]).transpose(1, 2, 0)  # one range over R, G and B
        rgb = map_tile(first / "filters-rgb.png", entry["filter_sheet"], c)
        assert rgb.mode == "RGB" and rgb.size == (11, 11)
        assert np.abs(np.asarray(rgb).astype(int) - expected).max() <= 1
        for index, part in enumerate("rgb"):
            tinted = np.asarray(map_tile(first / f"filters-{part}.png", entry["filter_sheet"], c))
            assert np.abs(tinted[..., index].astype(int) - expected[..., index]).max() <= 1
            assert not np.delete(tinted, index, axis=2).any()
    deeper = _layer(built, "features.3")["kernels"]
    assert list(deeper["filter_sheets"]) == ["mean"]
    mean = map_tile(
        built.root / "models/alexnet/layers/features.3/filters-mean.png", deeper["filter_sheet"], 5
    )
    assert mean.mode == "L" and mean.size == (5, 5)
    expected = _own_range(weights["features.3.weight"][5].mean(axis=0))
    assert np.abs(np.asarray(mean).astype(int) - expected).max() <= 1
    channel = _parse(first / "c0000.html")
    shown = {(src, int(column), int(row)) for src, column, row, _ in _map_pictures(channel)}
    for part in ("rgb", "r", "g", "b"):
        assert (f"filters-{part}.png", 0, 0) in shown


def test_the_weights_view_equals_the_model_weights(
    built: Built, weights: dict[str, np.ndarray]
) -> None:
    """features.3 reads features.0 through ReLU and max pooling: each channel page lists
    its 6 strongest positive and 6 strongest negative input channels by the L2 norm of
    W[o, i], signed by its sum (computed here from the state_dict, one loop per input),
    links each to features.0's channel page, and shows its kernel from the layer's
    kernel sheet, symmetric about zero."""
    from reportgen.report.text import format_number

    kernels = weights["features.3.weight"]  # [192, 64, 5, 5]
    entry = _layer(built, "features.3")["kernels"]["weights_view"]
    assert entry["input_layer"] == "features.0" and entry["through"] == ["ReLU", "MaxPool2d"]
    folder = built.root / "models/alexnet/layers/features.3"
    grid = entry["kernel_grid"]
    for o in (0, 7, 191):
        scores = []
        for i in range(kernels.shape[1]):
            norm = math.sqrt(float((kernels[o, i] ** 2).sum()))
            scores.append((norm if kernels[o, i].sum() >= 0 else -norm, i))
        positive = sorted((s for s in scores if s[0] > 0), key=lambda s: (-s[0], s[1]))[:6]
        negative = sorted((s for s in scores if s[0] < 0), key=lambda s: (s[0], s[1]))[:6]
        shown = weights_view_of(folder / f"c{o:04d}.html")
        assert shown["Positive"] == [
            (i, format_number(v), f"../features.0/c{i:04d}.html") for v, i in positive
        ]
        assert shown["Negative"] == [
            (i, format_number(v), f"../features.0/c{i:04d}.html") for v, i in negative
        ]
        for _, _, link in shown["Positive"] + shown["Negative"]:
            assert link is not None and (folder / link).is_file()
        chosen = [i for _, i in positive + negative]
        largest = np.abs(kernels[o, chosen]).max()
        for rank, i in enumerate(chosen):
            tile = map_tile(folder / "weights-kernels.png", grid, o * 12 + rank)
            expected = np.rint((kernels[o, i] / largest + 1.0) / 2.0 * 255.0)
            assert np.abs(np.asarray(tile).astype(int) - expected).max() <= 1
    # The first layer reads the image: its RGB filters stay, no weights view.
    assert _layer(built, "features.0")["kernels"].get("weights_view") is None
    first = built.root / "models/alexnet/layers/features.0/c0000.html"
    assert "Weights from its input" not in first.read_text(encoding="utf-8")


def test_linear_layer_gets_values_and_ranks_and_no_pictures(built: Built) -> None:
    layer = _layer(built, "classifier.6")
    folder = (built.root / layer["page"]).parent
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == ["inputs"]  # pages only
    assert layer["images"] == {} and layer["map_sheet"] is None
    for input_id, page in layer["detail_pages"].items():
        text = (built.root / page).read_text(encoding="utf-8")
        top = built.manifest["models"][0]["predictions"][input_id][0]
        # The highest unit on an input is its top prediction, named by its class.
        name = re.escape(f"unit {top['index']}: {html.escape(top['label'])}")
        assert re.search(rf'<td>1</td><th scope="row"><a href="[^"]+">{name}</a>', text)


def test_pages_say_what_a_value_is_and_what_the_overlay_is_drawn_on(built: Built) -> None:
    layer = _layer(built, "features.0")
    text = (built.root / layer["page"]).read_text(encoding="utf-8")
    assert "output of Conv2d, before ReLU" in text
    assert "in-place" in text
    detail = next(iter(layer["detail_pages"].values()))
    text = (built.root / detail).read_text(encoding="utf-8")
    assert "crop" in text  # overlays are drawn on the cropped view the network saw
    index = (built.root / "index.html").read_text(encoding="utf-8")
    top1 = built.manifest["models"][0]["predictions"]
    for predictions in top1.values():
        assert predictions[0]["label"] in index


def test_index_links_every_model_and_layer_page(built: Built) -> None:
    index = _parse(built.root / "index.html")
    hrefs = {attrs.get("href") for tag, attrs in index.tags if tag == "a"}
    model = built.manifest["models"][0]
    assert model["page"] in hrefs
    for layer in model["layers"]:
        assert layer["page"] in hrefs
    compare = built.root / "models/alexnet/compare.html"
    text = compare.read_text(encoding="utf-8")
    for name in LAYERS:
        assert name in text


# --- a second, smaller build: other options --------------------------------------------------


def test_manual_channels_layer_scale_and_quiet(small_images: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["-q", "run", str(small_images), "-m", "resnet18", "--weights", "none", "-l", "conv1"]
    args += ["--strategy", "manual", "--channels", "5,0", "--scale", "layer", "-o", str(out)]
    args += ["--colormap", "gray", "--alpha", "0.3", "--overlay-files"]
    result = invoke(*args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert result.stdout == "" and result.stderr == ""
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    (layer,) = manifest["models"][0]["layers"]
    assert all(chosen == [5, 0] for chosen in layer["selected"].values())
    assert manifest["settings"]["scale"] == "layer" and manifest["settings"]["alpha"] == 0.3
    # One range for the whole layer: only the channel holding the layer max reaches 255.
    input_id = manifest["inputs"][0]["id"]
    maxima = [s["max"] for s in _stats(out, manifest, layer)[input_id]]
    top = int(np.argmax(maxima))
    sheet = out / layer["images"]["map_sheet"].format(input=input_id)
    for c in (top, (top + 1) % 64):
        levels = np.asarray(map_tile(sheet, layer["map_sheet"], c))
        assert (levels.max() == 255) == (c == top) or maxima[c] == maxima[top]
    # --overlay-files: the selected channels' overlays saved as JPEGs, at the view's size,
    # linked from the channel pages.
    for input_id in layer["selected"]:
        folder = (out / layer["page"]).parent / "overlays" / input_id
        assert sorted(p.name for p in folder.iterdir()) == ["c0000.jpg", "c0005.jpg"]
        with Image.open(folder / "c0005.jpg") as image:
            assert image.size == (224, 224)
    assert layer["images"]["overlay"].format(input=input_id, channel=5).endswith("c0005.jpg")
    page_text = (out / channel_page(layer, 5)).read_text(encoding="utf-8")
    assert f'overlays/{input_id}/c0005.jpg">saved overlay (JPEG)' in page_text


def test_png_files_are_real_pngs(built: Built) -> None:
    for path in list(built.root.rglob("*.png"))[:50]:
        with Image.open(io.BytesIO(path.read_bytes())) as image:
            assert image.format == "PNG"


def test_argmax_is_given_in_map_and_view_pixels(built: Built) -> None:
    layer = _layer(built, "features.0")
    for input_id, per_channel in _stats(built.root, built.manifest, layer).items():
        page = (built.root / layer["detail_pages"][input_id]).read_text()
        # The statistics table is built from the page's own data when it is opened (its
        # rows as the Python formatter wrote them): channel, ..., map cell, view pixel.
        data = re.search(r'<script type="application/json" class="stats-data">(.*?)</script>', page)
        assert data
        rows = {row[0]: row for row in json.loads(html.unescape(data[1]))["rows"]}
        for channel, stats in enumerate(per_channel[:16]):
            y, x = stats["argmax"]["map_yx"]
            assert 0 <= y < 55 and 0 <= x < 55
            # The centre of map cell (y, x) on the 224x224 view the network saw.
            view_x, view_y = int((x + 0.5) * 224 / 55), int((y + 0.5) * 224 / 55)
            assert rows[channel][-2:] == [f"({y}, {x})", f"({view_x}, {view_y})"]


def test_true_value_ranges_are_shown_as_numbers(built: Built) -> None:
    from reportgen.report.render import format_number

    layer = _layer(built, "features.0")
    table = _stats(built.root, built.manifest, layer)
    for c in (0, 31):
        channel = layer_channels(layer)[c]
        text = html.unescape((built.root / channel["page"]).read_text(encoding="utf-8"))
        for per_channel in table.values():
            stats = per_channel[c]
            assert f"{format_number(stats['min'])} \u2026 {format_number(stats['max'])}" in text


def test_selected_channels_show_filter_beside_map_and_overlay(built: Built) -> None:
    """Filter, map, then the overlay: the view with the same tile laid over it."""
    layer = _layer(built, "features.0")
    for input_id, chosen in layer["selected"].items():
        detail = layer["detail_pages"][input_id]  # every channel of this input
        page = _parse(built.root / detail)
        # Every picture in order; a tile as "../sheets/INPUT.png@column,row".
        sources: list[str] = []
        tags = iter(page.tags)
        for tag, attrs in tags:
            place = TILE_PLACE.search(str(attrs.get("class") or ""))
            if tag == "span" and place:
                _, sheet = next(tags)  # the tile's <img>: the whole sheet
                sources.append(f"{sheet.get('src')}@{place.group(1)},{place.group(2)}")
            elif tag == "img":
                sources.append(str(attrs.get("src")))
        for c in chosen:
            column, row = _cell(layer["map_sheet"], c)
            tile = f"../sheets/{input_id}.png@{column},{row}"
            map_index = sources.index(tile)
            f_column, f_row = _cell(layer["kernels"]["filter_sheet"], c)
            drawn = f"../filters-rgb.png@{f_column},{f_row}"
            filter_index = max(i for i, s in enumerate(sources[:map_index]) if s == drawn)
            assert filter_index == map_index - 1
            view = built.manifest["models"][0]["views"][input_id]  # from the report root
            link = posixpath.relpath(view, posixpath.dirname(detail))
            assert sources[map_index + 1 : map_index + 3] == [link, tile]


def test_layer_comparison_shows_the_top_four_of_each_layer(built: Built) -> None:
    model = built.manifest["models"][0]
    # paged (issue 25): compare.html, compare-2.html, ... each a few detail inputs
    pages = sorted(built.root.glob(model["compare_page"].replace(".html", "*.html")))
    tiles = set()
    for page in pages:
        found = _map_pictures(_parse(page))
        tiles |= {
            (src.split("/")[-2] + "/" + src.split("/")[-1], col, row) for src, col, row, _ in found
        }
    text = html.unescape(pages[0].read_text(encoding="utf-8"))
    assert "55\u00d755" in text and "27\u00d727" in text
    map_layers = [x for x in model["layers"] if len(x["output_shape"]) == 3]
    for row, layer in enumerate(map_layers):
        for input_id, chosen in layer["selected"].items():
            for k, c in enumerate(chosen[:4]):
                # each input's comparison sheet: row = the map layer, column = the rank
                assert (f"compare/{input_id}.png", k, row) in tiles, (layer["name"], c)


def test_every_file_written_is_listed_with_its_hash(built: Built) -> None:
    """Pages rendered and written by forked workers, pictures by encoder threads: the
    manifest lists each file with the sha256 of what is on disk, and nothing else."""
    from reportgen.tools.verify import verify_report

    result = verify_report(built.root)
    assert result.ok, result.differences[:5]
    pages = [f for f in built.manifest["files"] if f["path"].endswith(".html")]
    channels = sum(len(layer["channels"]) for layer in built.manifest["models"][0]["layers"])
    assert len(pages) >= channels >= 200  # enough channels for the forked page workers
