"""What a page of a folder report pulls over a link: its HTML, the stylesheet and script
it links, and every picture it references (each file once), in bytes and files. Pictures
a stylesheet draws (a layer page's cards: reportgen/report/cards.py) count where a rule
naming them hangs on a class the page uses.

A page shared by link is opened over a network, where what counts is everything the page
pulls in, not its HTML alone. ``first_screen_bytes`` counts what the browser fetches
before anything is scrolled: everything but pictures marked ``loading="lazy"``.
Used by the page-weight test and ``benchmarks/page_weight.py``; no torch.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Transfer", "heaviest_pages", "page_transfer"]

_TAG = re.compile(r"<(img|link|script)\b([^>]*)>", re.IGNORECASE)
_ATTR = re.compile(r'([a-zA-Z-]+)="([^"]*)"')
_CLASSES = re.compile(r'\bclass="([^"]*)"')
# A rule with a picture: its selector's first class, and its declarations
_PICTURE_RULE = re.compile(r"^\.([\w-]+)[^{\n]*\{([^}]*url\([^}]*)\}", re.MULTILINE)
_URL = re.compile(r'url\("?([^")]+)"?\)')


@dataclass(frozen=True)
class Transfer:
    page: str  # report-relative path
    bytes: int  # HTML, CSS, JS and every referenced picture, each file once
    files: int
    first_screen_bytes: int  # the same without the pictures loaded lazily

    @property
    def kind(self) -> str:
        return page_kind(self.page)


def _local(page: str, reference: str) -> str | None:
    """A reference of ``page`` as a report-relative path; None for data: URIs, anchors
    and anything outside the report."""
    if not reference or reference.startswith(("data:", "#", "http:", "https:", "//")):
        return None
    path = reference.split("#", 1)[0].split("?", 1)[0]
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(page), path))
    return None if joined.startswith("..") else joined


def page_transfer(root: Path, page: str) -> Transfer:
    """What ``page`` (relative to the report folder ``root``) pulls in when opened."""
    text = (root / page).read_text(encoding="utf-8")
    eager: set[str] = {page}
    lazy: set[str] = set()
    for tag, attributes in _TAG.findall(text):
        found = dict(_ATTR.findall(attributes))
        tag = tag.lower()
        if tag == "link" and found.get("rel") not in ("stylesheet", "icon"):
            continue
        target = _local(page, found.get("href" if tag == "link" else "src", ""))
        if target is None:
            continue
        (lazy if found.get("loading") == "lazy" else eager).add(target)
        if tag == "link" and found.get("rel") == "stylesheet" and target.endswith(".css"):
            eager |= _drawn_pictures(root, target, text)
    lazy -= eager

    def size(paths: set[str]) -> int:
        return sum((root / p).stat().st_size for p in paths if (root / p).is_file())

    first = size(eager)
    return Transfer(page, first + size(lazy), len(eager | lazy), first)


def _drawn_pictures(root: Path, stylesheet: str, text: str) -> set[str]:
    """The pictures ``stylesheet`` draws on a page whose HTML is ``text``: those of its
    rules whose selector starts with a class the page uses (loaded with the page: a
    background is not lazy)."""
    path = root / stylesheet
    if not path.is_file():
        return set()
    used = {name for found in _CLASSES.findall(text) for name in found.split()}
    pictures = set()
    for name, declarations in _PICTURE_RULE.findall(path.read_text(encoding="utf-8")):
        if name in used:
            for url in _URL.findall(declarations):
                target = _local(stylesheet, url)
                if target is not None:
                    pictures.add(target)
    return pictures


def page_kind(page: str) -> str:
    """The kind of a report page: index, gallery, model, compare, input, layer, channel,
    input-layer (a detail input at a layer), comparison, classes (a model's classes
    index), class (a class's page and its gallery pages)."""
    parts = page.split("/")
    name = parts[-1]
    if parts[0] != "models":
        return "gallery" if parts[0] == "gallery" else name.removesuffix(".html")
    if "layers" in parts:
        if "inputs" in parts[parts.index("layers") :]:
            return "input-layer"
        return "layer" if name.startswith("index") else "channel"
    if "classes" in parts:
        return "classes" if name == "index.html" else "class"
    if "inputs" in parts:
        return "input"
    if "gallery" in parts:
        return "gallery"
    return "compare" if name.startswith("compare") else "model"


def heaviest_pages(root: Path) -> dict[str, Transfer]:
    """The page of each kind that pulls the most bytes."""
    heaviest: dict[str, Transfer] = {}
    for path in sorted(root.rglob("*.html")):
        transfer = page_transfer(root, path.relative_to(root).as_posix())
        best = heaviest.get(transfer.kind)
        if best is None or transfer.bytes > best.bytes:
            heaviest[transfer.kind] = transfer
    return heaviest
