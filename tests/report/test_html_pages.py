"""Every page of a small report: valid HTML (html5lib, strict), no inline styles or
scripts (the CSP forbids them), alt text on every image, a sensible heading order,
escaped text, the data the grid tools read, and text contrast (WCAG AA) of the theme
colours in light and dark mode."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from xml.etree import ElementTree

import html5lib
import numpy as np
import pytest

from reportgen.report.data import ChannelRecord, ChannelSummary, LayerRecord, ModelRecord
from reportgen.report.summary import channel_table, summarize_layer, summary_chart
from tests.helpers import REPO, build_small_report

CSP_REQUIRED = (
    "default-src 'none'",
    "img-src 'self' data:",
    "style-src 'self'",
    "script-src 'self'",
)
# Channel pages of one layer are alike: check this many of each layer (first ones, last one).
CHANNEL_PAGES_PER_LAYER = 6


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_small_report(tmp_path_factory)


def pages_to_check(report: Path) -> list[Path]:
    pages = []
    for path in sorted(report.rglob("*.html")):
        if re.fullmatch(r"c\d{4}\.html", path.name):
            siblings = sorted(path.parent.glob("c*.html"))
            index = siblings.index(path)
            if index >= CHANNEL_PAGES_PER_LAYER - 1 and path != siblings[-1]:
                continue
        pages.append(path)
    return pages


def parse(path: Path) -> ElementTree.Element:
    parser = html5lib.HTMLParser(strict=True, namespaceHTMLElements=False)
    try:
        return parser.parse(path.read_bytes())
    except html5lib.html5parser.ParseError as exc:
        raise AssertionError(f"{path}: not valid HTML: {exc} {parser.errors[:3]}") from exc


@pytest.fixture(scope="module")
def trees(report: Path) -> dict[str, ElementTree.Element]:
    return {str(p.relative_to(report)): parse(p) for p in pages_to_check(report)}


def test_page_kinds_are_all_checked(trees: dict[str, ElementTree.Element]) -> None:
    names = set(trees)
    assert "index.html" in names
    assert "models/alexnet/index.html" in names
    assert "models/alexnet/compare.html" in names
    for layer in ("features.0", "features.3", "classifier.6"):
        assert f"models/alexnet/layers/{layer}/index.html" in names
        assert f"models/alexnet/layers/{layer}/c0000.html" in names
    assert len(names) > 20


def test_no_inline_styles_or_scripts(trees: dict[str, ElementTree.Element]) -> None:
    for name, tree in trees.items():
        for element in tree.iter():
            if not isinstance(element.tag, str):
                continue
            attributes = {key.lower(): value for key, value in element.attrib.items()}
            assert "style" not in attributes, f"{name}: inline style on <{element.tag}>"
            handlers = [key for key in attributes if key.startswith("on")]
            assert not handlers, f"{name}: inline handler {handlers} on <{element.tag}>"
            for key in ("href", "src", "action", "formaction"):
                value = attributes.get(key, "").strip().lower()
                assert not value.startswith("javascript:"), f"{name}: {key}={value!r}"
            tag = element.tag.rsplit("}", 1)[-1]
            assert tag != "style", f"{name}: <style> element"
            if tag == "script":
                if "src" in attributes:
                    assert not re.match(r"^[a-z]+:|^//", attributes["src"]), attributes["src"]
                    assert not (element.text or "").strip()
                else:
                    assert attributes.get("type") == "application/json", f"{name}: inline script"
                    json.loads(element.text or "")


def test_csp_is_strict(trees: dict[str, ElementTree.Element]) -> None:
    for name, tree in trees.items():
        metas = [
            m
            for m in tree.iter("meta")
            if m.get("http-equiv", "").lower() == "content-security-policy"
        ]
        assert len(metas) == 1, name
        policy = metas[0].get("content", "")
        for part in CSP_REQUIRED:
            assert part in policy, f"{name}: {part!r} missing from {policy!r}"
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy


def test_nothing_loaded_from_elsewhere(trees: dict[str, ElementTree.Element]) -> None:
    for name, tree in trees.items():
        for element in tree.iter():
            if not isinstance(element.tag, str):
                continue
            for key in ("src", "srcset", "poster", "data"):
                value = element.get(key)
                if value:
                    assert not re.match(r"^(https?:)?//", value), f"{name}: {key}={value}"
            if element.tag == "link" and element.get("rel") == "stylesheet":
                assert not re.match(r"^(https?:)?//", element.get("href", "")), name


def test_every_image_has_alt_text(trees: dict[str, ElementTree.Element]) -> None:
    for name, tree in trees.items():
        for img in tree.iter("img"):
            alt = img.get("alt")
            assert alt is not None and alt.strip(), (
                f"{name}: <img src={img.get('src')}> without alt"
            )
        for svg in tree.iter("{http://www.w3.org/2000/svg}svg"):
            if svg.get("aria-hidden") == "true":
                continue  # decoration beside the same value as text
            titles = svg.findall("{http://www.w3.org/2000/svg}title")
            assert titles and (titles[0].text or "").strip(), f"{name}: <svg> without a title"
            if svg.get("aria-labelledby"):
                ids = {e.get("id") for e in svg.iter()}
                assert svg.get("aria-labelledby") in ids


HEADING = re.compile(r"^h([1-6])$")


def test_heading_order(trees: dict[str, ElementTree.Element]) -> None:
    for name, tree in trees.items():
        main = next(tree.iter("main"))
        levels = [
            int(m.group(1))
            for e in main.iter()
            if isinstance(e.tag, str) and (m := HEADING.match(e.tag))
        ]
        assert levels and levels[0] == 1, f"{name}: first heading is not h1: {levels[:3]}"
        assert levels.count(1) == 1, f"{name}: {levels.count(1)} h1 headings"
        for before, after in zip(levels, levels[1:]):
            assert after <= before + 1, f"{name}: heading level jumps h{before} -> h{after}"
        assert next(tree.iter("html")).get("lang") == "en"
        title = next(tree.iter("title")).text or ""
        assert title.strip(), name


def test_ids_are_unique_and_labels_resolve(trees: dict[str, ElementTree.Element]) -> None:
    for name, tree in trees.items():
        ids = [e.get("id") for e in tree.iter() if isinstance(e.tag, str) and e.get("id")]
        assert len(ids) == len(set(ids)), f"{name}: duplicate ids"
        known = set(ids)
        for element in tree.iter():
            if not isinstance(element.tag, str):
                continue
            for key in ("aria-labelledby", "for"):
                for ref in (element.get(key) or "").split():
                    assert ref in known, f"{name}: {key}={ref!r} points nowhere"
            href = element.get("href") or ""
            if element.tag == "a" and href.startswith("#") and len(href) > 1:
                assert href[1:] in known, f"{name}: link to missing #{href[1:]}"


def test_odd_input_name_is_escaped(report: Path) -> None:
    text = (report / "index.html").read_text(encoding="utf-8")
    assert "&lt;b&gt;odd &amp; &#34;q&#34;.png" in text
    assert "<b>odd" not in text
    tree = parse(report / "index.html")
    assert not list(tree.iter("b"))


def test_js_controls_are_hidden_without_javascript(trees: dict[str, ElementTree.Element]) -> None:
    layer = trees["models/alexnet/layers/features.3/index.html"]
    forms = [f for f in layer.iter("form") if f.get("data-grid-tools") is not None]
    assert len(forms) == 1 and forms[0].get("hidden") is not None
    channel = trees["models/alexnet/layers/features.3/c0000.html"]
    tools = [d for d in channel.iter("div") if d.get("data-opacity-tool") is not None]
    assert len(tools) == 1 and tools[0].get("hidden") is not None
    stacks = [s for s in channel.iter("span") if "stack" in (s.get("class") or "").split()]
    assert stacks and all(re.search(r"\balpha-\d+\b", s.get("class", "")) for s in stacks)
    # Shortcuts need JavaScript: their help, its button and their switch are made by
    # app.js, not repeated in every page's markup.
    assert not list(channel.iter("button")) and not list(channel.iter("dialog"))


# The frame every page repeats (head, header, footer: all but <main>). A report can have
# tens of thousands of channel pages; this was 3.3 KB of each before the keyboard help
# was made by app.js.
FRAME_LIMIT = 1500


def test_the_page_frame_is_small(report: Path) -> None:
    for rel in (
        "models/alexnet/layers/features.3/c0005.html",
        "models/alexnet/layers/features.3/index.html",
        "models/alexnet/index.html",
    ):
        text = (report / rel).read_text(encoding="utf-8")
        start, end = text.index("<main"), text.index("</main>") + len("</main>")
        frame = len((text[:start] + text[end:]).encode("utf-8"))
        assert 200 < frame < FRAME_LIMIT, (rel, frame)


def _key_targets(page: ElementTree.Element) -> dict[str, str | None]:
    """Where each key goes, found as app.js finds it: the first and the parent breadcrumb,
    the pager's rel links, the links marked as previous and next layer."""
    navs = {n.get("class"): n for n in page.iter("nav")}
    crumbs = list(navs["crumbs"].iter("li"))

    def link(item: ElementTree.Element) -> str | None:
        return next((a.get("href") for a in item.iter("a")), None)

    pager = list(navs["pager"].iter("a"))
    targets = {"home": link(crumbs[0]), "up": link(crumbs[-2]) if len(crumbs) > 1 else None}
    for a in pager:
        if a.get("rel"):
            targets[a.get("rel")] = a.get("href")
        if a.get("data-layer"):
            targets[f"{a.get('data-layer')}-layer"] = a.get("href")
    return targets


def test_channel_navigation_links(trees: dict[str, ElementTree.Element]) -> None:
    keys = _key_targets(trees["models/alexnet/layers/features.3/c0000.html"])
    assert keys["next"] == "c0001.html"
    assert keys["up"] == "index.html"
    assert keys["prev-layer"] == "../features.0/index.html"
    assert keys["next-layer"] == "../classifier.6/index.html"
    assert keys["home"] == "../../../../index.html"
    assert "prev" not in keys
    keys = _key_targets(trees["models/alexnet/layers/features.3/index.html"])
    assert keys["prev"] == keys["prev-layer"] == "../features.0/index.html"
    assert keys["next"] == keys["next-layer"] == "../classifier.6/index.html"
    assert keys["up"] == "../../index.html"


def test_grid_data_matches_manifest(report: Path, trees: dict[str, ElementTree.Element]) -> None:
    """The layer page's cards carry each channel's numbers over all inputs; each detail
    input's page at the layer carries that input's numbers (from the statistics file)."""
    manifest = json.loads((report / "manifest.json").read_text(encoding="utf-8"))
    layer_info = next(
        layer for layer in manifest["models"][0]["layers"] if layer["name"] == "features.3"
    )
    table = np.load(report / layer_info["stats_file"]["path"])
    fields = layer_info["stats_file"]["fields"]
    rows = {i["id"]: n for n, i in enumerate(manifest["inputs"])}
    pages = {"models/alexnet/layers/features.3/index.html": None}
    pages.update({page: input_id for input_id, page in layer_info["detail_pages"].items()})
    assert len(pages) == 1 + len(manifest["inputs"])  # a small run: every input in detail
    for page, input_id in pages.items():
        (section,) = [s for s in trees[page].iter("section") if s.get("class") == "layer-input"]
        block = next(s for s in section.iter("script") if s.get("type") == "application/json")
        data = json.loads(block.text or "")
        assert data["channels"] == [c["index"] for c in layer_info["channels"]]
        if input_id is None:
            summaries = [c["summary"] for c in layer_info["channels"]]
            assert data["selected"] == [
                c["index"] for c in layer_info["channels"] if c["summary"]["selected"]
            ]
            for key in ("mean", "max", "sparsity", "selected"):
                expected = [s[key] for s in summaries]
                assert data["stats"][key] == pytest.approx(expected, rel=1e-5, abs=1e-7)
        else:
            assert data["selected"] == layer_info["selected"][input_id]
            for key in ("mean", "max", "min", "std", "sparsity"):
                expected = table[rows[input_id], :, fields.index(key)].tolist()
                assert data["stats"][key] == pytest.approx(expected, rel=1e-5, abs=1e-6)
        # the layer page's cards are links; a detail input's maps, links over its sheet
        (grid,) = [e for e in section.iter() if e.get("data-grid") is not None]
        grid_items = [e for e in grid if e.get("data-c") is not None]
        assert [int(li.get("data-c")) for li in grid_items] == data["channels"]
        marked = [
            int(li.get("data-c")) for li in grid_items if "sel" in (li.get("class") or "").split()
        ]
        assert sorted(marked) == sorted(data["selected"])


def test_summary_chart_on_model_and_index(trees: dict[str, ElementTree.Element]) -> None:
    for name in ("index.html", "models/alexnet/index.html"):
        svgs = [
            svg
            for svg in trees[name].iter("{http://www.w3.org/2000/svg}svg")
            if "summary" in (svg.get("class") or "").split()
        ]
        assert len(svgs) == 2, name  # mean and sparsity
        for svg in svgs:
            bars = list(svg.iter("{http://www.w3.org/2000/svg}rect"))
            assert len(bars) == 3  # one per layer
            links = list(svg.iter("{http://www.w3.org/2000/svg}a"))
            # each bar is labelled with its layer's name in the picture, not in a tooltip,
            # and links that layer's page
            names = [
                "".join(text.itertext())
                for link in links
                for text in link.iter("{http://www.w3.org/2000/svg}text")
                if text.get("class") == "name"
            ]
            assert len(names) == 3
            for link, name in zip(links, names):
                assert link.get("href").endswith(f"layers/{name}/index.html"), (
                    name,
                    link.get("href"),
                )


# --- the summary numbers, from records alone ------------------------------------------


def _layer(name: str, stats: list[dict[str, float]]) -> LayerRecord:
    """A layer whose channels have ``stats`` over all inputs (their summaries)."""

    def finite(v: float) -> float | None:
        return v if math.isfinite(v) else None

    channels = [
        ChannelRecord(
            index=i,
            page=f"{name}/c{i}.html",
            summary=ChannelSummary(
                {
                    "mean": finite(s["mean"]),
                    "max": finite(s["max"]),
                    "min": None,
                    "sparsity": finite(s["sparsity"]),
                },
                1,
                1,
            ),
        )
        for i, s in enumerate(stats)
    ]
    return LayerRecord(
        name=name,
        type="Conv2d",
        value="output",
        output_shape=(len(stats), 2, 2),
        page=f"{name}/index.html",
        spatial=True,
        selected={"x": [0]},
        channels=channels,
    )


def test_summary_values_and_geometry() -> None:
    a = _layer(
        "a",
        [{"mean": 1.0, "max": 3.0, "sparsity": 0.0}, {"mean": 3.0, "max": 5.0, "sparsity": 0.5}],
    )
    b = _layer("b", [{"mean": -2.0, "max": 0.5, "sparsity": 1.0}])
    empty = _layer("c", [{"mean": float("nan"), "max": float("nan"), "sparsity": float("nan")}])
    summary = summarize_layer(a)
    assert summary.mean == 2.0 and summary.max == 5.0 and summary.sparsity == 0.25
    assert summarize_layer(empty).mean is None
    model = ModelRecord(
        id="m",
        name="m",
        weights="none",
        weights_detail="",
        preprocessing="",
        page="m/index.html",
        compare_page="m/compare.html",
        layers=[a, b, empty],
    )
    chart = summary_chart(model, width=300)
    mean_panel, sparsity_panel = chart.panels
    assert (mean_panel.low, mean_panel.high) == (-2.0, 2.0)
    bar_a, bar_b, bar_c = mean_panel.bars
    assert bar_a.x == pytest.approx(mean_panel.zero_x)  # right of zero
    assert bar_b.x + bar_b.width == pytest.approx(mean_panel.zero_x)  # left of zero
    assert bar_a.width == pytest.approx(bar_b.width)
    # a bar's length is its value over the panel's range
    assert bar_a.width == pytest.approx(2.0 / 4.0 * (chart.plot_right - chart.plot_left))
    assert bar_c.value is None and bar_c.width < 1
    assert (sparsity_panel.low, sparsity_panel.high) == (0.0, 1.0)
    assert sparsity_panel.bars[1].x + sparsity_panel.bars[1].width == pytest.approx(
        chart.plot_right
    )
    rows = [bar.y for bar in mean_panel.bars]
    assert rows == sorted(rows) and len(set(rows)) == 3  # one row a layer, in network order
    assert [bar.label for bar in mean_panel.bars] == ["a", "b", "c"]
    for bar in mean_panel.bars:
        assert chart.plot_left <= bar.x and bar.x + bar.width <= chart.plot_right + 0.01
        assert chart.plot_top <= bar.y and bar.y + bar.height <= chart.plot_bottom
    table = channel_table(empty, "x")
    assert table["stats"]["mean"] == [None]
    json.dumps(table, allow_nan=False)


# --- colour contrast of the theme (WCAG 2.1 AA: 4.5:1 for normal text) -------------------


def _luminance(hex_colour: str) -> float:
    value = hex_colour.lstrip("#")
    if len(value) == 3:
        value = "".join(c * 2 for c in value)
    channels = [int(value[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def _variables(block: str) -> dict[str, str]:
    return dict(re.findall(r"--([a-z-]+):\s*(#[0-9a-fA-F]{3,6})", block))


def _themes() -> dict[str, dict[str, str]]:
    """The light and the dark theme's colour variables, from style.css."""
    css = (REPO / "templates" / "style.css").read_text(encoding="utf-8")
    light_block = re.search(r":root\s*\{(.*?)\}", css, re.DOTALL)
    dark_block = re.search(
        r"@media \(prefers-color-scheme: dark\)\s*\{\s*:root\s*\{(.*?)\}", css, re.DOTALL
    )
    assert light_block and dark_block, "style.css lost its light or dark theme variables"
    light = _variables(light_block.group(1))
    return {"light": light, "dark": {**light, **_variables(dark_block.group(1))}}


def _rules(selector_part: str) -> list[str]:
    """The declarations of every style.css rule whose selector holds ``selector_part``."""
    css = (REPO / "templates" / "style.css").read_text(encoding="utf-8")
    css = re.sub(r"/\*.*?\*/", "", css, flags=re.DOTALL)
    return [
        body for head, body in re.findall(r"([^{}]+)\{([^{}]*)\}", css) if selector_part in head
    ]


def test_form_controls_and_focus_rings_are_3_to_1() -> None:
    """WCAG 1.4.11: the borders of select, input and button, and the focus ring, stand out
    3:1 from the backgrounds they sit on, in both themes."""
    for name, theme in _themes().items():
        for colour in ("control", "accent"):
            for bg in ("bg", "panel"):
                ratio = contrast(theme[colour], theme[bg])
                assert ratio >= 3, f"{name}: --{colour} on --{bg} is {ratio:.2f}:1"
    borders = [b for part in ("button", "select") for b in _rules(part) if "border:" in b]
    assert borders and all("var(--control)" in b for b in borders), borders
    (focus,) = [b for b in _rules(":focus-visible") if "outline:" in b]
    assert "var(--accent)" in focus and re.search(r"outline:\s*[23]px solid", focus), focus


def test_theme_text_contrast_is_wcag_aa() -> None:
    themes = _themes()
    light, dark = themes["light"], themes["dark"]
    pairs = [(fg, bg) for fg in ("fg", "muted", "accent", "sel") for bg in ("bg", "panel")]
    pairs.append(("fg", "warn-bg"))
    for theme_name, theme in (("light", light), ("dark", dark)):
        for fg, bg in pairs:
            ratio = contrast(theme[fg], theme[bg])
            assert ratio >= 4.5, f"{theme_name}: --{fg} on --{bg} is {ratio:.2f}:1"


def _text(element: ElementTree.Element) -> str:
    return " ".join("".join(element.itertext()).split())


def test_what_every_channel_page_would_repeat_is_said_once_on_the_layer_page(
    report: Path, trees: dict[str, ElementTree.Element]
) -> None:
    manifest = json.loads((report / "manifest.json").read_text(encoding="utf-8"))
    layers = {x["name"]: x for x in manifest["models"][0]["layers"]}
    for name, wanted in (
        ("features.0", {"about-filter", "about-examples", "about-maps"}),
        ("features.3", {"about-filter", "about-wv", "about-examples", "about-maps"}),
        ("classifier.6", {"about-examples"}),
    ):
        layer_page = trees[layers[name]["page"]]
        about = next(s for s in layer_page.iter("section") if s.get("aria-labelledby") == "about-h")
        assert any(h.get("id") == "about-h" for h in about.iter("h2"))
        entries = {dd.get("id"): _text(dd) for dd in about.iter("dd")}
        assert set(entries) == wanted, name
        channel_page = trees[layers[name]["channel_page"].replace("{channel:04d}", "0001")]
        links = [a for a in channel_page.iter("a") if _text(a) == "How to read this page"]
        assert [a.get("href") for a in links] == ["index.html#about-h"], name
        shown = _text(next(m for m in channel_page.iter("main")))
        # the explanations are the layer page's, not repeated on every channel page ...
        for entry in entries.values():
            assert entry[:40] not in shown, (name, entry)
        # ... while what the channel page shows of its own is still there
        sections = {s.get("aria-labelledby") for s in channel_page.iter("section")}
        assert {"wv-h" if "about-wv" in wanted else "examples-h", "stats-h"} <= sections
    spatial = trees[layers["features.3"]["page"]]
    examples = next(dd for dd in spatial.iter("dd") if dd.get("id") == "about-examples")
    field = layers["features.3"]["receptive_field"]
    assert f"{field}\u00d7{field} px (the receptive field of one map cell)" in _text(examples)
