"""The report in a real browser: headless Chromium (Debian's package, never a downloaded
one) driven by playwright-python.

Opened from file://, a person walks index -> model -> layer -> channel -> back, with
JavaScript on and off: nothing is requested from outside the report, the console stays
free of errors (CSP violations included), every image loads. Then the comforts: keyboard
shortcuts and the help overlay, sorting and filtering of the channel grid, the overlay
opacity slider, the layout at phone and desktop widths and the text contrast as rendered
in the light and dark themes.

Skipped, with the reason, where Chromium or playwright is missing; set
REPORTGEN_REQUIRE_BROWSER=1 (CI) to make that a failure instead.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import build_small_report, invoke, map_tile, write_images

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--metrics-recording-only",
]
LAYER = "models/alexnet/layers/features.3"


def chromium_path() -> str | None:
    candidates = [
        os.environ.get("REPORTGEN_CHROMIUM"),
        shutil.which("chromium"),
        "/usr/bin/chromium",
        shutil.which("chromium-browser"),
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def _unavailable(reason: str) -> None:
    if os.environ.get("REPORTGEN_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason} (REPORTGEN_REQUIRE_BROWSER=1)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = chromium_path()
    if executable is None:
        _unavailable(
            "Chromium is not installed (Debian: apt-get install chromium; .ci/run does it); "
            "set REPORTGEN_CHROMIUM to use another Chromium binary"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed: pip install -e '.[test]' (no browser download)")
    # playwright starts this Chromium with a fresh temporary profile (user data dir);
    # `playwright install` (which downloads a browser) is never needed.
    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_small_report(tmp_path_factory)


class Watch:
    """Everything a page asks for and everything it complains about."""

    def __init__(self, page: Any, allowed_prefix: str) -> None:
        self.allowed = allowed_prefix
        self.requests: list[str] = []
        self.errors: list[str] = []
        page.on("request", lambda r: self.requests.append(r.url))
        page.on("console", self._console)
        page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        page.on("requestfailed", self._failed)

    def _failed(self, request: Any) -> None:
        # Leaving a page cancels its pending loads (ERR_ABORTED); a missing or refused
        # file is another error (ERR_FILE_NOT_FOUND, csp, ...).
        if "ERR_ABORTED" not in (request.failure or ""):
            self.errors.append(f"failed: {request.url} {request.failure}")

    def _console(self, message: Any) -> None:
        text = message.text
        csp = "Content Security Policy" in text or "Content-Security-Policy" in text
        if message.type in ("error", "warning") and csp:
            self.errors.append(f"CSP: {text}")
        elif message.type == "error":
            self.errors.append(f"console: {text}")

    def check(self) -> None:
        outside = [
            u for u in self.requests if not (u.startswith(self.allowed) or u.startswith("data:"))
        ]
        assert not outside, f"requests outside the report: {outside[:5]}"
        assert not self.errors, f"console errors: {self.errors[:5]}"


def new_page(browser: Any, root: Path, **context: Any) -> tuple[Any, Any, Watch]:
    ctx = browser.new_context(**context)
    page = ctx.new_page()
    page.set_default_timeout(30_000)
    return ctx, page, Watch(page, root.as_uri() + "/")


IMAGES_STATE = """(scope) => {
  const root = scope ? document.querySelector(scope) : document;
  const images = Array.from(root.querySelectorAll('img'));
  return {
    total: images.length,
    pending: images.filter(i => !i.complete).length,
    broken: images.filter(i => i.complete && !(i.naturalWidth > 0))
      .map(i => i.getAttribute('src').slice(0, 80)),
  };
}"""


def assert_images_loaded(page: Any, scope: str | None = None) -> int:
    """Every image of the page (or of the part ``scope`` selects) loads, lazy ones too."""
    # The whole document first: a lazy image parsed after the switch below would wait
    # for a scroll that never comes.
    page.wait_for_load_state("domcontentloaded")
    eager = (
        "(scope) => { const root = scope ? document.querySelector(scope) : document;"
        " root.querySelectorAll('img[loading=lazy]').forEach(i => { i.loading = 'eager'; }); }"
    )
    page.evaluate(eager, scope)
    state = page.evaluate(IMAGES_STATE, scope)
    deadline = time.monotonic() + 90  # generous: CI machines can be slow and busy
    while state["pending"] and time.monotonic() < deadline:
        page.wait_for_timeout(100)
        page.evaluate(eager, scope)
        state = page.evaluate(IMAGES_STATE, scope)
    assert not state["pending"], f"{page.url}: {state['pending']} images never finished loading"
    assert not state["broken"], f"{page.url}: images that did not load: {state['broken'][:5]}"
    assert state["total"] > 0
    return int(state["total"])


CARD_PICTURES = """() => {
  const cards = Array.from(document.querySelectorAll('div.grid.cards.drawn > a.card[data-c]'));
  const urls = new Set();
  const bare = [];
  cards.forEach(card => {
    const before = getComputedStyle(card, '::before').backgroundImage;
    if (!before.includes('url(')) bare.push(card.getAttribute('data-c'));
    for (const side of ['::before', '::after']) {
      const image = getComputedStyle(card, side).backgroundImage;
      for (const m of image.matchAll(/url\\("([^"]+)"\\)/g)) urls.add(m[1]);
    }
  });
  return {cards: cards.length, bare: bare, urls: Array.from(urls)};
}"""


def assert_card_pictures_loaded(page: Any, watch: Watch) -> int:
    """A layer page's drawn cards (reportgen/report/cards.py): each shows a picture as
    its ::before box's background, and every sheet the cards' CSS names is requested and
    loads (a failed load is one of ``watch``'s errors). Returns the number of cards."""
    state = page.evaluate(CARD_PICTURES)
    assert state["cards"] and not state["bare"], state["bare"][:5]
    assert state["urls"], "no card picture"
    deadline = time.monotonic() + 30
    while not set(state["urls"]) <= set(watch.requests) and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    assert set(state["urls"]) <= set(watch.requests), (state["urls"], watch.requests[-5:])
    assert all(url.startswith(watch.allowed) for url in state["urls"]), state["urls"]
    return int(state["cards"])


def wait_until(page: Any, expression: str, tries: int = 100) -> None:
    """Poll a condition (page.wait_for_function would eval a string: the CSP refuses)."""
    for _ in range(tries):
        if page.evaluate(expression):
            return
        page.wait_for_timeout(50)
    raise AssertionError(f"{page.url}: never true: {expression}")


def path_of(page: Any, root: Path) -> str:
    url = page.url.split("#")[0]
    prefix = root.as_uri() + "/"
    assert url.startswith(prefix), url
    return url[len(prefix) :]


def test_the_watch_sees_csp_violations_and_outside_requests(browser: Any, tmp_path: Path) -> None:
    """The checks below mean something: a page breaking the rules is caught."""
    page_file = tmp_path / "bad.html"
    page_file.write_text(
        '<!DOCTYPE html><html lang=en><head><meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; img-src 'self' data:; style-src 'self'; script-src 'self'\">"
        '<title>bad</title></head><body><p style="color: red">x</p>'
        '<img src="http://example.invalid/x.png" alt=x></body></html>',
        encoding="utf-8",
    )
    ctx, page, watch = new_page(browser, tmp_path)
    try:
        page.goto(page_file.as_uri())
        page.wait_for_timeout(200)
        with pytest.raises(AssertionError):
            watch.check()
        assert any("CSP" in e for e in watch.errors), watch.errors
    finally:
        ctx.close()


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "no-js"])
def test_walk_the_folder_report(browser: Any, report: Path, javascript: bool) -> None:
    ctx, page, watch = new_page(
        browser, report, java_script_enabled=javascript, viewport={"width": 1280, "height": 900}
    )
    try:
        page.goto((report / "index.html").as_uri())
        assert page.title() == "reportgen report"
        assert_images_loaded(page)
        assert page.evaluate("document.documentElement.classList.contains('js')") is javascript

        page.click("main table a[href='models/alexnet/index.html']")
        assert path_of(page, report) == "models/alexnet/index.html"
        assert_images_loaded(page)
        assert page.locator("svg.summary").count() == 2

        page.click("main table a[href='layers/features.3/index.html']")
        assert path_of(page, report) == f"{LAYER}/index.html"
        # a card per channel, one link each, its strongest example drawn by the CSS (the
        # page has no <img> left)
        assert assert_card_pictures_loaded(page, watch) == 192
        tools_visible = page.locator("form.grid-tools").is_visible()
        assert tools_visible is javascript  # the sort/filter tools need JavaScript

        page.locator("nav.toc a").first.click()  # a detail input at this layer
        assert path_of(page, report).startswith(f"{LAYER}/inputs/")
        assert_images_loaded(page)
        # every channel's map: one picture of them all, a link over each
        assert page.locator("[data-sheet] > a[data-c]").count() == 192
        _open_the_statistics_table(page, built=javascript)
        rows = page.locator("details.stats-rows tbody > tr").count()
        assert rows == (192 if javascript else 0)  # built from the page's data when opened
        assert page.locator("details.stats-rows .needs-js").is_visible() is not javascript
        page.locator("[data-sheet] a[href='../c0005.html']").click()
        assert path_of(page, report) == f"{LAYER}/c0005.html"
        assert_images_loaded(page)
        assert page.locator(".opacity-tool").is_visible() is javascript
        assert page.locator(".stack").count() == 2

        back = ("inputs/", f"{LAYER}/index.html", "models/alexnet/index.html", "index.html")
        for expected in back:
            page.go_back()
            if expected == "inputs/":  # the detail input's page at the layer
                assert path_of(page, report).startswith(f"{LAYER}/inputs/")
            else:
                assert path_of(page, report) == expected
        # Forward through the pager links (no JavaScript needed for them either).
        page.goto((report / LAYER / "c0005.html").as_uri())
        page.click("nav.pager a[rel=next]")
        assert path_of(page, report) == f"{LAYER}/c0006.html"
        page.click("nav.crumbs li:nth-last-child(2) > a")
        assert path_of(page, report) == f"{LAYER}/index.html"
        page.click("nav.crumbs li:first-child > a")
        assert path_of(page, report) == "index.html"
        watch.check()
        assert any(u.endswith(".png") for u in watch.requests)
    finally:
        ctx.close()


def test_every_page_kind_loads_cleanly(browser: Any, report: Path) -> None:
    """Compare page, a 2-D layer and its channel: no errors, every image loads."""
    ctx, page, watch = new_page(browser, report)
    try:
        for rel in (
            "models/alexnet/compare.html",
            "models/alexnet/layers/classifier.6/index.html",
            "models/alexnet/layers/classifier.6/c0000.html",
            "models/alexnet/layers/features.0/c0063.html",
        ):
            page.goto((report / rel).as_uri())
            assert_images_loaded(page)
        watch.check()
    finally:
        ctx.close()


def _single_file_supported() -> bool:
    result = invoke("run", "--help", catch_exceptions=False)
    return "--single-file" in result.output


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "no-js"])
def test_walk_the_single_file_report(
    browser: Any, tmp_path_factory: pytest.TempPathFactory, javascript: bool
) -> None:
    if not _single_file_supported():
        pytest.skip("this reportgen has no --single-file option yet")
    report = _single_file_report(tmp_path_factory)
    ctx, page, watch = new_page(browser, report.parent, java_script_enabled=javascript)
    visible = (
        "() => { const s = Array.from(document.querySelectorAll('section.rg-page'))"
        ".filter(e => e.getClientRects().length); return s.map(e => e.id); }"
    )
    try:
        page.goto(report.as_uri())
        assert page.evaluate(visible) == ["index.html"]
        assert_images_loaded(page, "section.rg-page.rg-home")
        steps = [
            ("models/alexnet/index.html", "a[href='#models/alexnet/index.html']"),
            (
                "models/alexnet/layers/features.0/index.html",
                "a[href='#models/alexnet/layers/features.0/index.html']",
            ),
            (
                "models/alexnet/layers/features.0/c0003.html",
                "[data-grid] a[href='#models/alexnet/layers/features.0/c0003.html']",
            ),
        ]
        current = "section.rg-page.rg-home"
        for section, link in steps:
            page.locator(f"{current} {link}").first.click()
            assert page.evaluate(visible) == [section]
            current = f"section.rg-page[id='{section}']"
            assert_images_loaded(page, current)
        for section in ("models/alexnet/layers/features.0/index.html", "models/alexnet/index.html"):
            page.go_back()
            assert page.evaluate(visible) == [section]
        page.go_back()
        assert page.evaluate(visible) == ["index.html"]
        if javascript:
            page.goto(report.as_uri() + "#models/alexnet/layers/features.0/c0003.html")
            page.keyboard.press("n")
            wait_until(page, "location.hash.endsWith('c0004.html')")
            assert page.evaluate(visible) == ["models/alexnet/layers/features.0/c0004.html"]
            page.keyboard.press("u")
            wait_until(page, "location.hash.endsWith('features.0/index.html')")
        watch.check()
    finally:
        ctx.close()


_SINGLE: dict[str, Path] = {}


def _single_file_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if "report" not in _SINGLE:
        base = tmp_path_factory.mktemp("single-file")
        images = write_images(base / "images", 2, (48, 64), seed=2, prefix="s")
        out = base / "report.html"
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("REPORTGEN_OFFLINE", "1")
            mp.setenv("REPORTGEN_CACHE_DIR", "off")  # computed, never replayed
            result = invoke(
                "run",
                str(images),
                "--weights",
                "none",
                "-m",
                "alexnet",
                "-l",
                "features.0",
                "--top-k",
                "3",
                "--single-file",
                "-o",
                str(out),
                catch_exceptions=False,
            )
        assert result.exit_code == 0, result.output
        assert out.is_file()
        _SINGLE["report"] = out
    return _SINGLE["report"]


def test_keyboard_shortcuts_and_help(browser: Any, report: Path) -> None:
    ctx, page, watch = new_page(browser, report)
    try:

        def press(key: str, expected: str) -> None:
            with page.expect_navigation():
                page.keyboard.press(key)
            assert path_of(page, report) == expected, key

        page.goto((report / LAYER / "c0005.html").as_uri())
        # The help's button is visible (made by app.js); the links name their keys.
        assert page.locator("button.keys-button").is_visible()
        assert page.get_attribute("a[rel=next]", "aria-keyshortcuts") == "ArrowRight n"
        press("n", f"{LAYER}/c0006.html")
        press("ArrowRight", f"{LAYER}/c0007.html")
        press("p", f"{LAYER}/c0006.html")
        press("ArrowLeft", f"{LAYER}/c0005.html")
        press("]", "models/alexnet/layers/classifier.6/index.html")
        page.go_back()
        press("[", "models/alexnet/layers/features.0/index.html")
        page.go_back()
        press("u", f"{LAYER}/index.html")
        press("u", "models/alexnet/index.html")
        press("h", "index.html")

        page.goto((report / LAYER / "index.html").as_uri())
        help_dialog = page.locator("dialog.help")
        assert not help_dialog.is_visible()
        page.keyboard.press("?")
        assert help_dialog.is_visible()
        assert "next layer" in help_dialog.inner_text()
        page.keyboard.press("n")  # keys do nothing while the help is open
        assert path_of(page, report) == f"{LAYER}/index.html"
        page.keyboard.press("Escape")
        assert not help_dialog.is_visible()
        page.click("button.keys-button")
        assert help_dialog.is_visible()
        page.click("dialog.help button:text('Close')")
        assert not help_dialog.is_visible()
        # "/" jumps to the grid filter; typing there does not navigate.
        page.keyboard.press("/")
        assert page.evaluate("document.activeElement.name") == "value"
        page.keyboard.type("1n")
        assert path_of(page, report) == f"{LAYER}/index.html"
        watch.check()
    finally:
        ctx.close()


GRID_STATE = """() => Array.from(document.querySelectorAll('section.layer-input')).map(s => {
  const data = JSON.parse(s.querySelector('script.channel-data').textContent);
  const channels = list => Array.from(list).filter(el => !el.hidden)
    .map(el => Number(el.dataset.c));
  return {
    data: data,
    grid: channels(s.querySelectorAll('[data-grid] > [data-c]:not(.out)')),
    rows: channels(s.querySelectorAll('table.stats tbody > tr')),
    sel: channels(s.querySelectorAll('[data-grid] > [data-c].sel')),
    count: s.querySelector('.grid-count').textContent,
  };
})"""


def _open_the_statistics_table(page: Any, built: bool = True) -> None:
    """Open a detail page's statistics table; ``built``: wait until app.js has built its
    rows (the toggle event comes as a task of its own, after the click)."""
    page.click("details.stats-rows > summary")
    if built:
        page.locator("details.stats-rows tbody > tr").first.wait_for(state="attached")


def _detail_page(report: Path) -> Path:
    manifest = json.loads((report / "manifest.json").read_text(encoding="utf-8"))
    layer = next(x for x in manifest["models"][0]["layers"] if x["page"] == f"{LAYER}/index.html")
    return report / next(iter(layer["detail_pages"].values()))


def test_layer_cards_sort_and_filter(browser: Any, report: Path) -> None:
    ctx, page, watch = new_page(browser, report)
    try:
        page.goto((report / LAYER / "index.html").as_uri())
        (s,) = page.evaluate(GRID_STATE)
        assert s["grid"] == list(range(192)) and s["rows"] == []
        assert sorted(s["sel"]) == sorted(s["data"]["selected"])
        for stat in ("mean", "max", "sparsity", "selected"):
            page.select_option("form.grid-tools select[name=sort]", stat)
            (s,) = page.evaluate(GRID_STATE)
            values = s["data"]["stats"][stat]
            got = [values[c] for c in s["grid"]]
            assert got == sorted(got, reverse=True), stat
        page.check("form.grid-tools input[name=selected]")
        (s,) = page.evaluate(GRID_STATE)
        assert sorted(s["grid"]) == sorted(s["data"]["selected"]) == sorted(s["sel"])
        watch.check()
    finally:
        ctx.close()


# Counts how often the grid is re-sorted: each sort moves every card once.
COUNT_SORTS = """() => {
  const grid = document.querySelector('[data-grid]');
  window.__moves = 0;
  new MutationObserver((records) => {
    for (const r of records) window.__moves += r.addedNodes.length;
  }).observe(grid, {childList: true});
  return grid.querySelectorAll('[data-c]').length;
}"""


def test_one_change_of_the_sort_menu_sorts_once(browser: Any, report: Path) -> None:
    ctx, page, watch = new_page(browser, report)
    try:
        page.goto((report / LAYER / "index.html").as_uri())
        cards = page.evaluate(COUNT_SORTS)
        page.select_option("form.grid-tools select[name=sort]", "max")
        page.wait_for_timeout(100)
        assert page.evaluate("window.__moves") == cards  # one sort, not one per event
        page.fill("form.grid-tools input[name=value]", "0")  # typed numbers apply at once
        page.wait_for_timeout(100)
        assert page.evaluate("window.__moves") == 2 * cards
        watch.check()
    finally:
        ctx.close()


def test_grid_sort_and_filter(browser: Any, report: Path) -> None:
    """A detail input's page: the links over the sheet keep their places (each covers its
    map) and filtering dims the maps left out; the statistics table, built when opened,
    sorts and filters its rows."""
    ctx, page, watch = new_page(browser, report)
    try:
        page.goto(_detail_page(report).as_uri())
        (s,) = page.evaluate(GRID_STATE)
        assert s["rows"] == [] and "192 of 192" in s["count"]
        _open_the_statistics_table(page)
        built = page.evaluate(
            "() => Array.from(document.querySelectorAll('table.stats tbody > tr')).map(tr =>"
            " [tr.className, tr.querySelector('th a').getAttribute('href'),"
            " ...Array.from(tr.cells).map(c => c.textContent)])"
        )
        script = "document.querySelector('script.stats-data').textContent"
        data = json.loads(page.evaluate(script))["rows"]
        sel = "\u25cf "
        expected = [
            ["sel", r[1], f"{sel}{r[2]} (selected)", *r[4:]] if r[3] else ["", r[1], r[2], *r[4:]]
            for r in data
        ]
        assert built == expected
        sections = page.evaluate(GRID_STATE)
        assert len(sections) == 1
        for s in sections:
            assert s["grid"] == s["rows"] == list(range(192))
            assert "192 of 192" in s["count"]
            assert sorted(s["sel"]) == sorted(s["data"]["selected"])
            assert len(s["sel"]) == 4

        for stat in ("mean", "max", "min", "std", "sparsity"):
            page.select_option("form.grid-tools select[name=sort]", stat)
            for s in page.evaluate(GRID_STATE):
                values = s["data"]["stats"][stat]
                got = [values[c] for c in s["rows"]]
                assert got == sorted(got, reverse=True), stat
                assert s["grid"] == list(range(192))  # the maps stay where they are
            page.select_option("form.grid-tools select[name=order]", "asc")
            for s in page.evaluate(GRID_STATE):
                values = s["data"]["stats"][stat]
                got = [values[c] for c in s["rows"]]
                assert got == sorted(got), stat

        page.select_option("form.grid-tools select[name=stat]", "mean")
        page.select_option("form.grid-tools select[name=op]", "ge")
        page.fill("form.grid-tools input[name=value]", "0")
        for s in page.evaluate(GRID_STATE):
            expected = {c for c, v in enumerate(s["data"]["stats"]["mean"]) if v >= 0}
            assert set(s["grid"]) == expected == set(s["rows"])
            assert f"Showing {len(expected)} of 192" in s["count"]

        page.fill("form.grid-tools input[name=value]", "")
        page.check("form.grid-tools input[name=selected]")
        for s in page.evaluate(GRID_STATE):
            assert sorted(s["grid"]) == sorted(s["data"]["selected"]) == sorted(s["sel"])

        page.click("form.grid-tools button[type=reset]")
        page.wait_for_timeout(50)
        for s in page.evaluate(GRID_STATE):
            assert s["grid"] == list(range(192))
        # Enter in the number box must not submit the form (form-action 'none').
        page.fill("form.grid-tools input[name=value]", "0.1")
        page.press("form.grid-tools input[name=value]", "Enter")
        assert path_of(page, report) == _detail_page(report).relative_to(report).as_posix()
        watch.check()
    finally:
        ctx.close()


def test_overlay_opacity_slider(browser: Any, report: Path) -> None:
    ctx, page, watch = new_page(browser, report)
    try:
        page.goto((report / LAYER / "c0005.html").as_uri())
        opacity = (
            "Array.from(document.querySelectorAll('.stack .map-over'))"
            ".map(i => getComputedStyle(i).opacity)"
        )
        assert set(page.evaluate(opacity)) == {"0.5"}  # --alpha 0.5, the default
        page.fill(".opacity-tool input", "80")
        assert set(page.evaluate(opacity)) == {"0.8"}
        assert page.inner_text(".opacity-tool output") == "80%"
        page.fill(".opacity-tool input", "0")
        assert set(page.evaluate(opacity)) == {"0"}
        # A detail input's page at the layer composes the selected channels' overlays
        # the same way.
        page.goto(_detail_page(report).as_uri())
        assert len(page.evaluate(opacity)) == page.locator(".selected figure").count() > 0
        page.fill(".opacity-tool input", "35")
        assert set(page.evaluate(opacity)) == {"0.35"}
        watch.check()
    finally:
        ctx.close()


def _shown_pixels(screenshot: bytes, width: int, height: int) -> Any:
    """The colour at the centre of each map pixel of a box screenshot, as [h, w, 3]."""
    import numpy as np
    from PIL import Image

    with Image.open(io.BytesIO(screenshot)) as shot:
        box = np.asarray(shot.convert("RGB")).astype(int)
    ys = ((np.arange(height) + 0.5) * box.shape[0] / height).astype(int)
    xs = ((np.arange(width) + 0.5) * box.shape[1] / width).astype(int)
    return box[ys][:, xs]


def test_map_tiles_show_their_own_channels_pixels(browser: Any, report: Path) -> None:
    """What a person sees in a map box is that channel's map: the box, screenshotted, holds
    at the centre of every map pixel the colour of that pixel in the sheet; so a tile
    shifted by one map pixel, or a neighbour's, fails. The overlay (smoothed, at full
    opacity) shows the same map."""
    import numpy as np

    manifest = json.loads((report / "manifest.json").read_text(encoding="utf-8"))
    layer = next(x for x in manifest["models"][0]["layers"] if x["name"] == "features.3")
    grid = layer["map_sheet"]
    ctx, page, watch = new_page(browser, report, device_scale_factor=1)
    try:
        for channel in (5, 100, 191):
            page.goto((report / LAYER / f"c{channel:04d}.html").as_uri())
            page.fill(".opacity-tool input", "100")
            for input_id in layer["selected"]:
                sheet = report / layer["images"]["map_sheet"].format(input=input_id)
                expected = np.asarray(map_tile(sheet, grid, channel).convert("RGB")).astype(int)
                figure = page.locator(f"figure[id='in-{input_id}']")
                shown = _shown_pixels(
                    figure.locator(".pair > .tile.map").screenshot(),
                    grid["tile_width"],
                    grid["tile_height"],
                )
                assert np.abs(shown - expected).max() <= 3, (channel, input_id)
                over = _shown_pixels(
                    figure.locator(".stack .tile.map-over").screenshot(),
                    grid["tile_width"],
                    grid["tile_height"],
                )
                # Smoothing blends each pixel with its neighbours a little, far less than
                # a shift by one map pixel would change it.
                error = np.median(np.abs(over - expected))
                shifted = np.median(np.abs(over[:, 1:] - expected[:, :-1]))
                assert error <= 20 and error < shifted / 2, (channel, input_id, error, shifted)
        watch.check()
    finally:
        ctx.close()


WEIGHTS_VIEW = """() => Array.from(
    document.querySelectorAll('section[aria-labelledby=wv-h] ol.weights')
  ).map(list => Array.from(list.querySelectorAll('li')).map(li => {
    const link = li.querySelector('a'), tile = li.querySelector('.tile.kernel');
    const box = tile ? tile.getBoundingClientRect() : null;
    return {href: link ? link.href : null, input: Number(link.textContent),
            weight: li.textContent.trim().split(' ').pop(),
            tile: box ? [box.width, box.height] : null};
  }))"""


def test_the_weights_view_links_resolve_and_its_weights_equal_the_models(
    browser: Any, report: Path
) -> None:
    """features.3 reads features.0 (through ReLU and max pooling). On a channel page the
    view lists the 6 strongest positive and 6 strongest negative input channels, by the L2
    norm of W[o, i] signed by its sum, computed here from the state_dict of the same seeded
    network; each kernel tile shows that slice's pixels of the kernel sheet, and each link
    opens that input channel's page."""
    import math

    import numpy as np
    import torch
    from torchvision.models import alexnet

    from reportgen.report.text import format_number

    torch.manual_seed(0)  # the report's --weights none, --seed 0
    kernels = alexnet(weights=None).state_dict()["features.3.weight"].double().numpy()
    manifest = json.loads((report / "manifest.json").read_text(encoding="utf-8"))
    layer = next(x for x in manifest["models"][0]["layers"] if x["name"] == "features.3")
    view = layer["kernels"]["weights_view"]
    assert view["input_layer"] == "features.0"
    grid = view["kernel_grid"]
    ctx, page, watch = new_page(browser, report, device_scale_factor=1)
    try:
        for channel in (2, 150):
            page.goto((report / LAYER / f"c{channel:04d}.html").as_uri())
            assert_images_loaded(page, "section[aria-labelledby=wv-h]")
            positive, negative = page.evaluate(WEIGHTS_VIEW)
            scores = []
            for i in range(kernels.shape[1]):
                norm = math.sqrt(float((kernels[channel, i] ** 2).sum()))
                scores.append((norm if kernels[channel, i].sum() >= 0 else -norm, i))
            strongest = {
                "positive": sorted((s for s in scores if s[0] > 0), key=lambda s: (-s[0], s[1])),
                "negative": sorted((s for s in scores if s[0] < 0), key=lambda s: (s[0], s[1])),
            }
            for shown, sign in ((positive, "positive"), (negative, "negative")):
                expected = strongest[sign][:6]
                assert [(x["input"], x["weight"]) for x in shown] == [
                    (i, format_number(v)) for v, i in expected
                ]
            sheet = report / view["kernel_sheet"]
            for rank, item in enumerate(positive + negative):
                assert item["tile"] == [28, 28]
                tile = page.locator("section[aria-labelledby=wv-h] .tile.kernel").nth(rank)
                seen = _shown_pixels(tile.screenshot(), grid["tile_width"], grid["tile_height"])
                want = np.asarray(map_tile(sheet, grid, channel * 12 + rank).convert("RGB"))
                assert np.abs(seen - want.astype(int)).max() <= 3, (channel, rank)
            for item in positive[:2] + negative[:2]:
                page.goto(item["href"])
                assert path_of(page, report) == (
                    f"models/alexnet/layers/features.0/c{item['input']:04d}.html"
                )
                assert f"features.0 \u203a channel {item['input']}" in page.title()
        watch.check()
    finally:
        ctx.close()


PAGES = [
    "index.html",
    "models/alexnet/index.html",
    "models/alexnet/compare.html",
    f"{LAYER}/index.html",
    f"{LAYER}/c0005.html",
    "models/alexnet/layers/classifier.6/index.html",
]


CONTRAST = """() => {
  function rgba(text) {
    const m = text.match(/rgba?\\(([^)]+)\\)/);
    if (!m) return null;
    const p = m[1].split(/[ ,\\/]+/).filter(Boolean).map(Number);
    return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
  }
  function lum(c) {
    const v = c.slice(0, 3).map(x => {
      x /= 255;
      return x <= 0.04045 ? x / 12.92 : Math.pow((x + 0.055) / 1.055, 2.4);
    });
    return 0.2126 * v[0] + 0.7152 * v[1] + 0.0722 * v[2];
  }
  function background(el) {
    for (let e = el; e; e = e.parentElement) {
      const c = rgba(getComputedStyle(e).backgroundColor);
      if (c && c[3] > 0.5) return c;
    }
    return rgba(getComputedStyle(document.documentElement).backgroundColor) || [255, 255, 255, 1];
  }
  const bad = [];
  let checked = 0;
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const seen = new Set();
  while (walker.nextNode()) {
    const node = walker.currentNode;
    const el = node.parentElement;
    if (!node.textContent.trim() || seen.has(el)) continue;
    if (el.closest('svg, [hidden], dialog:not([open])')) continue;
    seen.add(el);
    const style = getComputedStyle(el);
    if (style.visibility === 'hidden' || !el.getClientRects().length) continue;
    const fg = rgba(style.color), bg = background(el);
    const l1 = lum(fg), l2 = lum(bg);
    const ratio = (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05);
    const size = parseFloat(style.fontSize), bold = Number(style.fontWeight) >= 700;
    const need = (size >= 24 || (bold && size >= 18.66)) ? 3 : 4.5;
    checked += 1;
    const text = node.textContent.trim().slice(0, 30);
    if (ratio < need) bad.push(`${el.tagName}.${el.className}: ${ratio.toFixed(2)} "${text}"`);
  }
  return {checked, bad};
}"""


@pytest.mark.parametrize(("scheme", "width"), [("light", 1440), ("dark", 375)])
def test_layout_and_text_contrast(browser: Any, report: Path, scheme: str, width: int) -> None:
    """At phone and desktop widths the page never scrolls sideways (wide tables scroll in
    their own box); in the light and the dark theme all text as rendered is WCAG AA."""
    ctx, page, watch = new_page(
        browser, report, color_scheme=scheme, viewport={"width": width, "height": 800}
    )
    try:
        backgrounds = set()
        for rel in PAGES:
            page.goto((report / rel).as_uri())
            scroll_width = page.evaluate("document.documentElement.scrollWidth")
            assert scroll_width <= width, f"{rel}: page is {scroll_width}px wide at {width}px"
            assert page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)") >= 14
            result = page.evaluate(CONTRAST)
            assert result["checked"] > 10, rel
            assert not result["bad"], f"{scheme} {rel}: low contrast: {result['bad'][:5]}"
            backgrounds.add(page.evaluate("getComputedStyle(document.body).backgroundColor"))
        assert backgrounds == {"rgb(255, 255, 255)" if scheme == "light" else "rgb(21, 24, 28)"}
        watch.check()
    finally:
        ctx.close()


# --- navigation, small screens, accessibility checkers (issue 16) -------------------------


def every_page_kind(report: Path) -> list[str]:
    """One page of each kind: index, model, comparison of layers, layer, channel, input,
    input at a layer, and a Linear layer with one of its units."""
    manifest = json.loads((report / "manifest.json").read_text(encoding="utf-8"))
    model = manifest["models"][0]
    layer = next(x for x in model["layers"] if x["page"] == f"{LAYER}/index.html")
    return [
        "index.html",
        model["page"],
        model["compare_page"],
        layer["page"],
        f"{LAYER}/c0005.html",
        next(iter(model["input_pages"].values())),
        next(iter(layer["detail_pages"].values())),
        "models/alexnet/layers/classifier.6/index.html",
        "models/alexnet/layers/classifier.6/c0001.html",
        model["classes_page"],
        model["classes"][0]["page"],
    ]


def test_the_classes_index_sorts_and_filters_by_name(browser: Any, report: Path) -> None:
    model = json.loads((report / "manifest.json").read_text(encoding="utf-8"))["models"][0]
    labels = [c["label"] for c in model["classes"]]
    ctx, page, watch = new_page(browser, report)
    try:
        page.goto((report / model["classes_page"]).as_uri())
        shown_items = "Array.from(document.querySelectorAll('ol.classes li:not([hidden])'))"
        names = shown_items + ".map(li => li.firstElementChild.textContent)"
        numbers = shown_items + ".map(li => Number(li.dataset.k))"
        assert sorted(page.evaluate(names)) == sorted(labels)
        page.select_option("select[name=sort]", "k")
        assert page.evaluate(numbers) == sorted(c["index"] for c in model["classes"])
        wanted = labels[0][:3]
        page.fill("input[name=name]", wanted)
        shown = page.evaluate(names)
        assert shown and all(wanted.lower() in label.lower() for label in shown)
        page.fill("input[name=name]", "no class is called this")
        assert page.evaluate(names) == []
        watch.check()
    finally:
        ctx.close()


HEADER_BOTTOM = "document.querySelector('header.top').getBoundingClientRect().bottom"


def test_a_jump_lands_below_the_sticky_header(browser: Any, report: Path) -> None:
    ctx, page, watch = new_page(browser, report, viewport={"width": 1280, "height": 600})
    try:
        page.goto((report / LAYER / "c0005.html").as_uri() + "#stats-h")
        top = page.evaluate("document.getElementById('stats-h').getBoundingClientRect().top")
        assert page.evaluate("window.scrollY") > 0  # it did jump
        assert top >= page.evaluate(HEADER_BOTTOM), top
        # An in-page link (a dataset example's map) too.
        link = page.locator("main a[href^='#in-']").first
        target = link.get_attribute("href")[1:]
        page.evaluate("window.scrollTo(0, 0)")
        link.click()
        where = f"document.getElementById({json.dumps(target)}).getBoundingClientRect().top"
        assert page.evaluate(where) >= page.evaluate(HEADER_BOTTOM)
        watch.check()
    finally:
        ctx.close()


def test_keys_belong_to_form_controls_and_scrolling_tables(browser: Any, report: Path) -> None:
    ctx, page, watch = new_page(browser, report, viewport={"width": 375, "height": 700})
    try:
        page.goto((report / LAYER / "index.html").as_uri())
        page.focus("form.grid-tools input[name=value]")
        for key in ("n", "p", "u", "h", "ArrowRight", "ArrowLeft", "]"):
            page.keyboard.press(key)
        page.wait_for_timeout(200)
        assert path_of(page, report) == f"{LAYER}/index.html"

        page.goto((report / LAYER / "c0005.html").as_uri())
        table = "main table.stats"
        wide = f"(t => t.scrollWidth > t.clientWidth)(document.querySelector('{table}'))"
        assert page.evaluate(wide)
        page.focus(f"{table} a")
        page.keyboard.press("ArrowRight")
        page.keyboard.press("ArrowRight")
        page.wait_for_timeout(200)
        assert path_of(page, report) == f"{LAYER}/c0005.html"
        assert page.evaluate(f"document.querySelector('{table}').scrollLeft") > 0
        # Outside the table the same key goes to the next channel.
        page.evaluate("document.activeElement.blur()")
        with page.expect_navigation():
            page.keyboard.press("ArrowRight")
        assert path_of(page, report) == f"{LAYER}/c0006.html"
        watch.check()
    finally:
        ctx.close()


def test_the_shortcut_switch_turns_keys_off_and_is_kept(browser: Any, report: Path) -> None:
    ctx, page, watch = new_page(browser, report)
    try:
        page.goto((report / LAYER / "c0005.html").as_uri())
        page.click("button.keys-button")
        switch = page.locator("dialog.help input[type=checkbox]")
        assert switch.is_visible() and switch.is_checked()
        switch.uncheck()
        page.keyboard.press("Escape")
        assert "keys off" in page.inner_text("button.keys-button")
        for key in ("n", "ArrowRight", "?"):
            page.keyboard.press(key)
        page.wait_for_timeout(200)
        assert path_of(page, report) == f"{LAYER}/c0005.html"
        assert not page.locator("dialog.help").is_visible()
        assert page.locator("[aria-keyshortcuts]").count() == 0  # none announced either
        # Kept: the next page (and a reload) start with shortcuts off.
        page.click("nav.pager a[rel=next]")
        assert path_of(page, report) == f"{LAYER}/c0006.html"
        page.keyboard.press("n")
        page.wait_for_timeout(200)
        assert path_of(page, report) == f"{LAYER}/c0006.html"
        page.click("button.keys-button")
        page.locator("dialog.help input[type=checkbox]").check()
        page.keyboard.press("Escape")
        with page.expect_navigation():
            page.keyboard.press("n")
        assert path_of(page, report) == f"{LAYER}/c0007.html"
        watch.check()
    finally:
        ctx.close()


def test_the_header_is_one_line_on_a_phone(browser: Any, report: Path) -> None:
    ctx, page, watch = new_page(browser, report, viewport={"width": 375, "height": 700})
    try:
        for rel in every_page_kind(report):
            page.goto((report / rel).as_uri())
            height = page.evaluate(
                "document.querySelector('header.top').getBoundingClientRect().height"
            )
            assert height < 50, (rel, height)
            # The current page's crumb is in sight (the crumbs scroll to their end), not
            # under the pager's arrows.
            box = page.locator("nav.crumbs [aria-current=page]").bounding_box()
            pager = page.locator("nav.pager").bounding_box()
            assert box is not None and pager is not None
            assert box["x"] >= 0 and box["x"] + box["width"] <= pager["x"] + 1, (rel, box, pager)
        watch.check()
    finally:
        ctx.close()


BROWSER_TOOLS = Path(
    os.environ.get("REPORTGEN_BROWSER_TOOLS")
    or Path(__file__).resolve().parent.parent / "browser-tools" / "node_modules"
)
INSTALL_TOOLS = "npm ci --ignore-scripts in tests/browser-tools (.ci/run does it)"


def browser_tool(relative: str) -> Path:
    """A checker from the npm registry, installed in tests/browser-tools."""
    path = BROWSER_TOOLS / relative
    if not path.is_file():
        _unavailable(f"{relative} is missing under {BROWSER_TOOLS}: {INSTALL_TOOLS}")
    return path


AXE_RUN = """async () => {
  const result = await axe.run(document, {resultTypes: ['violations']});
  return result.violations.map(v => `${v.id} (${v.impact}, ${v.nodes.length}): ` +
    v.nodes.slice(0, 3).map(n => n.target.join(' ')).join('; '));
}"""
# The maps are pictures of numbers, not text: hidden (still there for their names) so that
# the contrast checks measure text against the page, not against a heat map beneath it.
HIDE_MAPS = ".tile > img, img.map, img.map-over, img.sheet { opacity: 0 !important; }"


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_finds_no_violations(browser: Any, report: Path, scheme: str) -> None:
    axe = browser_tool("axe-core/axe.min.js").read_text(encoding="utf-8")
    # bypass_csp: the report's policy rightly refuses the checker's inline script.
    ctx, page, watch = new_page(browser, report, color_scheme=scheme, bypass_csp=True)
    try:
        found = {}
        for rel in every_page_kind(report):
            page.goto((report / rel).as_uri())
            page.add_style_tag(content=HIDE_MAPS)
            page.add_script_tag(content=axe)
            violations = page.evaluate(AXE_RUN)
            if rel == f"{LAYER}/c0005.html":  # and with the keys help open
                page.click("button.keys-button")
                violations += page.evaluate(AXE_RUN)
            if page.locator("details.stats-rows").count():  # and with its table built
                _open_the_statistics_table(page)
                violations += page.evaluate(AXE_RUN)
            if violations:
                found[rel] = violations
        assert not found, json.dumps(found, indent=1)
    finally:
        ctx.close()


def test_axe_sees_a_violation(browser: Any, tmp_path: Path) -> None:
    """The check above can fail: grey on white and an image without alt are found."""
    axe = browser_tool("axe-core/axe.min.js").read_text(encoding="utf-8")
    bad = tmp_path / "bad.html"
    bad.write_text(
        '<!DOCTYPE html><html lang="en"><head><title>bad</title></head><body><main>'
        '<p style="color:#bbb">faint</p><img src="x.png"></main></body></html>',
        encoding="utf-8",
    )
    ctx, page, _watch = new_page(browser, tmp_path, bypass_csp=True)
    try:
        page.goto(bad.as_uri())
        page.add_script_tag(content=axe)
        ids = {v.split(" ")[0] for v in page.evaluate(AXE_RUN)}
        assert {"color-contrast", "image-alt"} <= ids, ids
    finally:
        ctx.close()


def nu_html_checker(files: list[Path]) -> list[dict[str, Any]]:
    """The Nu Html Checker's errors (vnu-jar from npm, run by a Java runtime)."""
    import subprocess

    jar = browser_tool("vnu-jar/build/dist/vnu.jar")
    java = shutil.which("java")
    if java is None:
        _unavailable("no Java runtime for the Nu Html Checker (Debian: default-jre-headless)")
    done = subprocess.run(
        [str(java), "-jar", str(jar), "--errors-only", "--format", "json", *map(str, files)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    messages = json.loads(done.stderr or done.stdout or '{"messages": []}')["messages"]
    return [m for m in messages if m.get("type") == "error" or m.get("subType") == "fatal"]


def test_nu_html_checker_finds_no_errors(report: Path) -> None:
    errors = nu_html_checker([report / rel for rel in every_page_kind(report)])
    assert not errors, json.dumps(errors[:10], indent=1)


def test_nu_html_checker_finds_no_errors_in_a_single_file(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The whole --single-file report: one <main> around its page sections, and no id in
    an SVG (ids there must be XML names; the sections' ids are page paths)."""
    errors = nu_html_checker([_single_file_report(tmp_path_factory)])
    assert not errors, json.dumps(errors[:10], indent=1)


def test_nu_html_checker_sees_an_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><html><head></head><body><p><div></p></body></html>")
    assert nu_html_checker([bad])
