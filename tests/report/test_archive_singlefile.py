"""``--single-file``: one HTML file that references nothing outside itself."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from reportgen.report.output import is_single_file_report
from tests.helpers import invoke_reproducible, write_images

RUN = ["--weights", "none", "-m", "alexnet", "-l", "features.0", "--top-k", "2"]
URL_ATTRS = {"src", "href", "srcset", "poster", "data", "action", "formaction", "xlink:href"}


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], str]:
    root = tmp_path_factory.mktemp("single")
    write_images(root / "images", 2, (48, 48), seed=5, prefix="pic")
    (root / "out").mkdir()
    here = os.getcwd()
    os.chdir(root)
    try:
        result = invoke_reproducible(
            "run",
            "images",
            *RUN,
            "--single-file",
            "-o",
            "out/analysis.html",
            "--max-single-file-mb",
            "0.5",
            "--json",
            catch_exceptions=False,
        )
    finally:
        os.chdir(here)
    assert result.exit_code == 0, result.output
    return root / "out" / "analysis.html", json.loads(result.stdout), result.stderr


class Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.urls: list[tuple[str, str, str]] = []
        self.ids: list[str] = []
        self.csp: list[str] = []
        self.blocks: list[tuple[str, str]] = []  # ("style"|"script", text)
        self.order: list[str] = []
        self.sections: list[tuple[str, str]] = []
        self._open: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        self.order.append(tag)
        for name, value in values.items():
            if name in URL_ATTRS:
                self.urls.append((tag, name, value))
            if name == "id":
                self.ids.append(value)
        if tag == "meta" and values.get("http-equiv", "").lower() == "content-security-policy":
            self.csp.append(values["content"])
        if tag == "section" and "rg-page" in values.get("class", ""):
            self.sections.append((values.get("id", ""), values.get("class", "")))
        if tag in ("style", "script") and values.get("type", "") != "application/json":
            self._open = tag
            self.blocks.append((tag, ""))

    def handle_data(self, data: str) -> None:
        if self._open:
            tag, text = self.blocks[-1]
            self.blocks[-1] = (tag, text + data)

    def handle_endtag(self, tag: str) -> None:
        if tag == self._open:
            self._open = None


@pytest.fixture(scope="module")
def parsed(single: tuple[Path, dict[str, Any], str]) -> Collector:
    collector = Collector()
    collector.feed(single[0].read_text(encoding="utf-8"))
    return collector


def test_references_nothing_outside_itself(parsed: Collector, single: Any) -> None:
    text = single[0].read_text(encoding="utf-8")
    assert parsed.urls
    outside = [u for u in parsed.urls if not u[2].startswith(("data:", "#"))]
    assert outside == []
    assert not re.search(r"url\(\s*['\"]?(?!data:|#)", text)  # CSS url() only to data:
    assert not re.search(r"<(iframe|object|embed|base)\b", text)
    assert not re.search(r"@import", text)
    ids = set(parsed.ids)
    assert len(ids) == len(parsed.ids), "duplicate ids"
    anchors = {u[2][1:] for u in parsed.urls if u[2].startswith("#") and len(u[2]) > 1}
    assert anchors - ids == set(), "in-page links without a target"


def test_csp_allows_only_its_own_hashed_blocks(parsed: Collector) -> None:
    assert len(parsed.csp) == 1
    assert parsed.order.index("meta") < min(
        parsed.order.index(tag) for tag in ("style", "script") if tag in parsed.order
    )
    policy = {p.split()[0]: p.split()[1:] for p in parsed.csp[0].split(";") if p.strip()}
    assert policy["default-src"] == ["'none'"]
    assert policy["img-src"] == ["data:"]
    for kind in ("style", "script"):
        texts = [text for tag, text in parsed.blocks if tag == kind]
        assert texts, f"no inline {kind}"
        hashes = {
            "'sha256-" + base64.b64encode(hashlib.sha256(t.encode()).digest()).decode() + "'"
            for t in texts
        }
        assert set(policy[f"{kind}-src"]) == hashes
    flat = " ".join(parsed.csp)
    assert "unsafe" not in flat and "http" not in flat and "*" not in flat


def test_every_page_is_a_section_home_last(parsed: Collector, single: Any) -> None:
    _path, summary, _stderr = single
    ids = [section_id for section_id, _ in parsed.sections]
    assert len(ids) == summary["pages"] + 1  # and the manifest
    assert "index.html" in ids and "manifest.json" in ids
    assert "models/alexnet/layers/features.0/index.html" in ids
    assert "models/alexnet/layers/features.0/c0063.html" in ids
    assert parsed.sections[-1] == ("index.html", "rg-page rg-home")


def test_embedded_manifest_lists_the_embedded_pictures(parsed: Collector) -> None:
    manifest_links = [u[2] for u in parsed.urls if u[2].startswith("data:application/json")]
    assert len(manifest_links) == 1
    manifest = json.loads(base64.b64decode(manifest_links[0].split(",", 1)[1]))
    assert manifest["generator"]["name"] == "reportgen"
    listed = {entry["sha256"] for entry in manifest["files"]}
    images = {u[2] for u in parsed.urls if u[2].startswith("data:image/")}
    assert images
    for uri in images:
        data = base64.b64decode(uri.split(",", 1)[1])
        assert hashlib.sha256(data).hexdigest() in listed


def test_size_warning_and_summary(single: Any) -> None:
    path, summary, stderr = single
    assert summary["report"] == "out/analysis.html"
    assert summary["files"] == 1
    assert any("above the 0.5 MB limit" in w for w in summary["warnings"])
    assert "Warning: the single-file report is" in stderr
    assert path.stat().st_size > 500_000


def test_written_atomically_nothing_beside_it(single: Any) -> None:
    path, _summary, _stderr = single
    assert sorted(p.name for p in path.parent.iterdir()) == ["analysis.html"]
    assert path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert path.stat().st_mode & 0o044 == 0o044  # readable like any file the user makes
    assert is_single_file_report(path)


def test_refuses_to_replace_another_file(tmp_path: Path) -> None:
    target = tmp_path / "notes.html"
    target.write_text("<p>my notes</p>")
    (tmp_path / "images").mkdir()
    Image.new("RGB", (32, 32), "red").save(tmp_path / "images" / "red.png")
    result = invoke_reproducible(
        "run",
        str(tmp_path / "images"),
        *RUN,
        "--single-file",
        "-o",
        str(target),
        catch_exceptions=False,
    )
    assert result.exit_code == 1
    assert "not a reportgen single-file report" in result.output
    assert target.read_text() == "<p>my notes</p>"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images", "notes.html"]


def test_single_file_holds_the_settings_to_rebuild_it(single: Any) -> None:
    from reportgen.cli.config import read_manifest_settings

    settings, manifest = read_manifest_settings(single[0])
    assert settings["models"] == ["alexnet"] and settings["top_k"] == 2
    assert manifest["generator"]["name"] == "reportgen"


def test_section_ids_and_in_page_links_are_per_page() -> None:
    from reportgen.report.singlefile import section_from_page

    page = (
        "<html><head><title>T</title></head><body>"
        '<a href="#x">x</a><h2 id="x">x</h2><label for="f">f</label><input id="f">'
        '<svg><linearGradient id="g"/><rect fill="url(#g)"/></svg>'
        '<a href="#a.html">page</a><a href="#a.html:in-1">anchor</a><a href="#a.html#in-2">t</a>'
        "</body></html>"
    )
    section = section_from_page(page, "m/i.html", {"a.html", "m/i.html"})
    assert section.startswith('<section class="rg-page" id="m/i.html" aria-label="T">')
    for part in (
        'href="#m/i.html:x"',
        'id="m/i.html:x"',
        'for="m/i.html:f"',
        'id="m/i.html:f"',
        'fill="url(#m/i.html:g)"',
        'href="#a.html"',
        'href="#a.html:in-1"',
        'href="#a.html:in-2"',
    ):
        assert part in section
