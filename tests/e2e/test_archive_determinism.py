"""Deterministic output, and a folder report that strict hosts can serve.

Two runs with the same inputs and settings, written to two different folders, give
byte-identical trees. Every page carries a Content-Security-Policy that allows
nothing from elsewhere, uses no inline style or script, and every page can be
reached from index.html by following links (no JavaScript needed).
"""

from __future__ import annotations

import os
import re
import struct
from collections import deque
from html.parser import HTMLParser
from pathlib import Path
from posixpath import normpath

import pytest

from reportgen.tools.verify import verify_report
from tests.helpers import invoke_reproducible, snapshot, write_images

RUN = ["--weights", "none", "-m", "alexnet", "-l", "features.0", "--top-k", "2"]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("determinism")
    # the same file name in two folders
    write_images(root / "images", 2, (40, 56), names=["a/cat.png", "b/cat.png"], seed=3)
    first = root / "first"
    second = root / "elsewhere" / "second"
    second.parent.mkdir()
    here = os.getcwd()
    os.chdir(root)  # inputs named as a user would: relative to where reportgen runs
    try:
        for out in (first, second):
            result = invoke_reproducible(
                "-q", "run", "images", *RUN, "-o", str(out), catch_exceptions=False
            )
            assert result.exit_code == 0, result.output
    finally:
        os.chdir(here)
    return root, first, second


def test_two_runs_are_byte_identical(two_runs: tuple[Path, Path, Path]) -> None:
    _root, first, second = two_runs
    a, b = snapshot(first), snapshot(second)
    assert sorted(a) == sorted(b)
    different = [path for path in a if a[path] != b[path]]
    assert different == []
    assert len(a) > 50  # a whole report, not a stub


def test_report_is_verifiable(two_runs: tuple[Path, Path, Path]) -> None:
    _root, first, _second = two_runs
    result = verify_report(first)
    assert result.ok, [d.line() for d in result.differences]
    assert result.checked == len(snapshot(first)) - 1  # all but manifest.json itself


def test_same_names_in_two_folders_stay_apart(two_runs: tuple[Path, Path, Path]) -> None:
    import json

    _root, first, _second = two_runs
    manifest = json.loads((first / "manifest.json").read_text())
    ids = [i["id"] for i in manifest["inputs"]]
    assert len(ids) == 2 and len(set(ids)) == 2
    assert all(i.startswith("cat-") for i in ids)
    assert manifest["created"] == "2023-11-14T22:13:20Z"  # SOURCE_DATE_EPOCH
    assert "output" not in manifest["settings"]  # the report does not depend on -o


def test_no_machine_paths_in_the_report(two_runs: tuple[Path, Path, Path]) -> None:
    root, first, _second = two_runs
    needle = str(root).encode()
    assert [p for p, data in snapshot(first).items() if needle in data] == []


def png_chunks(data: bytes) -> list[str]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, offset = [], 8
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        chunks.append(data[offset + 4 : offset + 8].decode("ascii"))
        offset += 12 + length
    return chunks


def test_pictures_carry_no_time_or_software(two_runs: tuple[Path, Path, Path]) -> None:
    _root, first, _second = two_runs
    pngs = [p for p in first.rglob("*.png")]
    jpegs = [p for p in first.rglob("*.jpg")]
    assert pngs and jpegs
    allowed = {"IHDR", "PLTE", "IDAT", "IEND", "tRNS", "pHYs", "sRGB", "gAMA", "cHRM"}
    for path in pngs:
        extra = set(png_chunks(path.read_bytes())) - allowed
        assert not extra, f"{path.name} has metadata chunks {extra}"
    for path in jpegs:
        assert b"Exif\x00\x00" not in path.read_bytes()[:4096], path.name


class PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []
        self.csp: list[str] = []
        self.inline: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "a" and values.get("href"):
            self.links.append(values["href"] or "")
        if tag == "meta" and (values.get("http-equiv") or "").lower() == "content-security-policy":
            self.csp.append(values.get("content") or "")
        if tag == "style":
            self.inline.append("<style> block")
        data_block = (values.get("type") or "").lower() in ("application/json", "text/plain")
        if tag == "script" and not values.get("src") and not data_block:
            self.inline.append("inline <script>")
        for name, _value in attrs:
            if name == "style" or name.startswith("on"):
                self.inline.append(f"{name}= attribute on <{tag}>")


def parse(path: Path) -> PageParser:
    parser = PageParser()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def test_every_page_has_a_strict_csp_and_no_inline_code(
    two_runs: tuple[Path, Path, Path],
) -> None:
    _root, first, _second = two_runs
    pages = sorted(first.rglob("*.html"))
    assert len(pages) > 60
    for page in pages:
        parsed = parse(page)
        assert len(parsed.csp) == 1, page
        policy = {
            part.split()[0]: part.split()[1:] for part in parsed.csp[0].split(";") if part.strip()
        }
        assert policy["default-src"] == ["'none'"]
        for directive, sources in policy.items():
            for source in sources:
                assert source in ("'none'", "'self'", "data:"), (page, directive, source)
        assert parsed.inline == [], (page, parsed.inline)


def test_every_page_is_reachable_by_links_from_the_index(
    two_runs: tuple[Path, Path, Path],
) -> None:
    _root, first, _second = two_runs
    pages = {p.relative_to(first).as_posix() for p in first.rglob("*.html")}
    seen = {"index.html"}
    queue = deque(["index.html"])
    while queue:
        page = queue.popleft()
        base = page.rpartition("/")[0]
        for href in parse(first / page).links:
            target = href.split("#")[0]
            if not target or re.match(r"^[a-z]+:", target):
                continue
            resolved = normpath(f"{base}/{target}" if base else target)
            if resolved.endswith(".html") and resolved not in seen:
                assert resolved in pages, f"{page} links to missing {href}"
                seen.add(resolved)
                queue.append(resolved)
    assert seen == pages
