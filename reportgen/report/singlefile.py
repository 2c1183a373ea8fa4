"""``--single-file``: the whole report as one HTML file that needs nothing beside it.

The pages are rendered with the same templates as a folder report; only the link
helper differs (``render.Linker`` with an :class:`Inliner`): links to pages become
in-page anchors, every other file a ``data:`` URI. Each page's body becomes one
``<section>`` whose ``id`` is the page's path in a folder report, so
``report/models/resnet18/index.html`` there is ``analysis.html#models/resnet18/index.html``
here. CSS shows one section at a time (``:target``; the home page when none is
targeted). Stylesheets and scripts are inlined and allowed by their sha256 in the
Content-Security-Policy, which allows nothing else but ``data:`` images.

The file is written in the staging folder beside the target, synced, then renamed
over the target in one step: complete or absent, like a folder report.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import mimetypes
import re
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from reportgen.report import paths
from reportgen.report.data import ReportData
from reportgen.report.manifest_file import EMBEDDED_URI_PREFIX
from reportgen.report.render import Linker

if TYPE_CHECKING:
    from reportgen.report.output import StagedReport


# Default size above which a single file gets a warning (mail attachment limits are
# around 20-25 MB); --max-single-file-mb raises it.
DEFAULT_MAX_MB = 25.0
STAGED_NAME = "single-file.html"

# Shown when a section is targeted; the home section (last in the document, so that
# "~" can reach it) when none is. :has() also handles anchors inside a section.
SINGLE_FILE_CSS = """
/* reportgen --single-file: one page section visible at a time */
.rg-page { display: none; }
.rg-page:target, .rg-page:has(:target) { display: block; }
.rg-page.rg-home { display: block; }
.rg-page:target ~ .rg-home, .rg-page:has(:target) ~ .rg-home { display: none; }
"""

_BODY = re.compile(r"<body\b[^>]*>(.*)</body>", re.DOTALL | re.IGNORECASE)
_HEAD = re.compile(r"<head\b[^>]*>(.*?)</head>", re.DOTALL | re.IGNORECASE)
_TITLE = re.compile(r"<title>(.*?)</title>", re.DOTALL | re.IGNORECASE)
_CSP = re.compile(r'<meta http-equiv="Content-Security-Policy" content="[^"]*">', re.IGNORECASE)
_STYLESHEET = re.compile(
    r'<link rel="stylesheet" href="data:text/css;base64,([A-Za-z0-9+/=]*)"\s*/?>', re.IGNORECASE
)
_SCRIPT = re.compile(
    r'<script src="data:text/javascript;base64,([A-Za-z0-9+/=]*)"[^>]*>\s*</script>',
    re.IGNORECASE,
)
_HEAD_LINK = re.compile(r'<link rel="(?:prev|next|up)" href="[^"]*"\s*/?>\n?', re.IGNORECASE)
_ID_ATTRS = re.compile(
    r'(\s)(id|for|aria-labelledby|aria-describedby|aria-controls|aria-owns|headers|list)="([^"]*)"'
)
_LOCAL_HREF = re.compile(r'(\s(?:xlink:)?href)="#([^"]*)"')
_MAIN_OPEN = re.compile(r"<main\b([^>]*)>")
_LOCAL_URL = re.compile(r"url\(#([^)\s\"']+)\)")  # SVG paint servers, clip paths


def csp_hash(text: str) -> str:
    """The CSP source that allows exactly this inline <style> or <script> content."""
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


def single_file_csp(styles: list[str], scripts: list[str]) -> str:
    """Nothing from elsewhere: data: images, and only these inline blocks."""
    style_src = " ".join(csp_hash(s) for s in styles) or "'none'"
    script_src = " ".join(csp_hash(s) for s in scripts) or "'none'"
    return (
        f"default-src 'none'; img-src data:; style-src {style_src}; "
        f"script-src {script_src}; base-uri 'none'; form-action 'none'"
    )


class Inliner:
    """Decides, for a single-file report, what a link to a report path becomes."""

    def __init__(self, page_ids: set[str], read: Callable[[str], bytes], cache: int = 2048):
        self.page_ids = page_ids
        self.read = read
        self._cache: OrderedDict[str, str] = OrderedDict()
        self._cache_size = cache

    def anchor(self, page: str, fragment: str) -> str | None:
        """``#page`` or ``#page:fragment`` for a page of the report; None for a file."""
        if page not in self.page_ids:
            return None
        return f"#{page}:{fragment}" if fragment else f"#{page}"

    def data_uri(self, path: str) -> str:
        uri = self._cache.get(path)
        if uri is None:
            kind = mimetypes.guess_type(path)[0] or "application/octet-stream"
            if path.endswith(".js"):
                kind = "text/javascript"
            uri = f"data:{kind};base64," + base64.b64encode(self.read(path)).decode("ascii")
            self._cache[path] = uri
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(path)
        return uri


def section_from_page(text: str, page: str, page_ids: set[str], home: bool = False) -> str:
    """One rendered page as a ``<section>``: its body, with its element ids prefixed by
    the page path (ids repeat from page to page) and its in-page links to match."""
    match = _BODY.search(text)
    body = match.group(1) if match else text
    prefix = f"{page}:"

    def ids(found: re.Match[str]) -> str:
        tokens = " ".join(prefix + token for token in found.group(3).split())
        return f'{found.group(1)}{found.group(2)}="{tokens}"'

    def hrefs(found: re.Match[str]) -> str:
        target = found.group(2)
        if target in page_ids or target.partition(":")[0] in page_ids:
            return found.group(0)  # already a link to a page section (made by Linker)
        page_part, hash_, fragment = target.partition("#")
        if hash_ and page_part in page_ids:  # url(page) + "#fragment" in a template
            return f'{found.group(1)}="#{page_part}:{fragment}"'
        return f'{found.group(1)}="#{prefix}{target}"'

    body = _LOCAL_HREF.sub(hrefs, _ID_ATTRS.sub(ids, body))
    # One <main> for the whole document (written around the sections): a page's own
    # <main> becomes a plain block, keeping its id for the skip link.
    body = _MAIN_OPEN.sub(r"<div\1>", body).replace("</main>", "</div>")
    body = _LOCAL_URL.sub(lambda found: f"url(#{prefix}{found.group(1)})", body)
    title_match = _TITLE.search(text)
    title = title_match.group(1).strip() if title_match else page
    classes = "rg-page rg-home" if home else "rg-page"
    return (
        f'<section class="{classes}" id="{html.escape(page)}" aria-label="{title}">\n'
        f"{body.strip()}\n</section>\n"
    )


def _head_parts(text: str) -> tuple[str, list[str], list[str]]:
    """The home page's <head> without its stylesheet and script links, and the CSS and
    JavaScript those links carried (as data: URIs)."""
    match = _HEAD.search(text)
    head = match.group(1) if match else ""
    styles = [base64.b64decode(m.group(1)).decode("utf-8") for m in _STYLESHEET.finditer(head)]
    scripts = [base64.b64decode(m.group(1)).decode("utf-8") for m in _SCRIPT.finditer(head)]
    head = _SCRIPT.sub("", _STYLESHEET.sub("", head))
    head = _HEAD_LINK.sub("", head)
    return head, styles, scripts


def _raw_text(text: str, tag: str) -> str:
    """Content safe to sit inside a raw-text element (<style>, <script>)."""
    return re.sub(f"</(?={tag})", "<\\\\/", text, flags=re.IGNORECASE)


def _manifest_section(manifest: dict[str, Any], page_ids: set[str]) -> str:
    text = json.dumps(manifest, ensure_ascii=False, allow_nan=False, indent=1)
    uri = EMBEDDED_URI_PREFIX + base64.b64encode(text.encode("utf-8")).decode("ascii")
    files = len(manifest.get("files", []))
    return (
        f'<section class="rg-page" id="{paths.MANIFEST}" aria-label="manifest.json">\n'
        "<h1>manifest.json</h1>\n"
        "<p>The report's machine-readable twin (format in README): settings, environment, "
        f"inputs, predictions and statistics, and the {files} pictures and assets embedded "
        "in this file with their sha256.</p>\n"
        f'<p><a href="{uri}" download="{paths.MANIFEST}">Save manifest.json</a> &middot; '
        f'<a href="#{paths.INDEX}">back to the report</a></p>\n</section>\n'
    )


def write_single_file(
    data: ReportData,
    staged: StagedReport,
    build_manifest: Callable[[ReportData, list[dict[str, Any]]], dict[str, Any]],
    env: Any,
    max_mb: float | None = None,
) -> tuple[int, list[str]]:
    """Render the report into one HTML file and put it at ``staged.target``.

    Returns the page count and warnings (the size limit). The pictures must already
    be in ``staged``; the stylesheet and script are added to it here.
    """
    from reportgen.report.pages import plan_pages, render_pages
    from reportgen.report.render import templates_dir

    for asset in ("style.css", "app.js", "favicon.svg"):
        staged.write(f"{paths.ASSETS}/{asset}", (templates_dir() / asset).read_bytes())
    page_ids = {page.path for page in plan_pages(data)} | {paths.MANIFEST}
    inliner = Inliner(page_ids, lambda path: staged.path_of(path).read_bytes())
    out_path: Path = staged.path_of(STAGED_NAME)
    state: dict[str, Any] = {"home": "", "scripts": []}

    with out_path.open("w", encoding="utf-8", newline="\n") as out:

        def write(page: str, text: str) -> None:
            if page == paths.INDEX:
                state["home"] = section_from_page(text, page, page_ids, home=True)
                state["scripts"] = _start_document(out, text)
            else:
                out.write(section_from_page(text, page, page_ids))

        pages = render_pages(
            data, env, write, csp="", linker=lambda page: Linker(page, inline=inliner)
        )
        manifest = build_manifest(data, staged.file_list())
        out.write(_manifest_section(manifest, page_ids))
        out.write(state["home"])
        out.write("</main>\n")
        for script in state["scripts"]:
            out.write(f"<script>{script}</script>\n")
        out.write("</body>\n</html>\n")
    size = out_path.stat().st_size
    staged.replace_file(STAGED_NAME)
    warnings = []
    limit = DEFAULT_MAX_MB if max_mb is None else max_mb
    if size > limit * 1_000_000:
        warnings.append(
            f"the single-file report is {size / 1_000_000:.1f} MB, above the "
            f"{limit:g} MB limit: mail and chat may refuse it and browsers open it slowly; "
            "choose fewer layers or inputs, write a folder report (no --single-file), or "
            "raise the limit with --max-single-file-mb"
        )
    return pages, warnings


def _start_document(out: IO[str], home_text: str) -> list[str]:
    """Write the document's <head> (from the home page's) and open <body>; returns the
    scripts to put at the end of the body (they ran deferred in a folder report)."""
    head, styles, scripts = _head_parts(home_text)
    styles = [_raw_text(s, "style") for s in [*styles, SINGLE_FILE_CSS]]
    scripts = [_raw_text(s, "script") for s in scripts]
    csp = single_file_csp(styles, scripts)
    meta = f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
    head = _CSP.sub(lambda _m: meta, head, count=1) if _CSP.search(head) else meta + "\n" + head
    inline_styles = "".join(f"<style>{s}</style>\n" for s in styles)
    lang = re.search(r"<html\b([^>]*)>", home_text, re.IGNORECASE)
    out.write(f"<!DOCTYPE html>\n<html{lang.group(1) if lang else ''}>\n<head>")
    out.write(head.rstrip() + "\n" + inline_styles + "</head>\n<body>\n<main>\n")
    return scripts
