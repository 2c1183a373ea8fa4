"""Screenshots of the sample report for the README, taken in headless Chromium.

    make sample                                   # builds sample-report/
    .venv/bin/python docs/screenshots.py          # writes docs/images/*.png

Pages: the index, a layer page, a channel page, the layer comparison, an input page's
"why" (the coffee photo's, from its heading down) and its top class's page. Uses Debian's
Chromium (/usr/bin/chromium, or --chromium PATH) through playwright-python; it never
downloads a browser. The pictures are kept small: 1440 px wide (and 375 px wide, a
phone: NAME-375.png), one screen high, reduced to a 256-colour palette (plenty for a
page of text and heat maps).
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import sys
from pathlib import Path
from typing import Any

from PIL import Image

REPO = Path(__file__).resolve().parent.parent
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


# How much of each page to show (px): the channel page's maps are below its filter.
TALL = {
    "index": 900,
    "layer": 1000,
    "input-layer": 1000,
    "channel": 1500,
    "input": 1100,
    "compare": 900,
    "why": 1100,
    "class": 1100,
}
# Shot at the first width only (README shows them side by side at 1440 px)
WIDE_ONLY = {"why", "class"}
# Shot from a heading down (its id), not from the page's top
FROM = {"why": "why-h"}


def pick_pages(report: Path, layer: str | None) -> dict[str, str]:
    """index, layer, input-by-layer, channel, input and comparison pages of the report's
    first model."""
    manifest = json.loads((report / "manifest.json").read_text(encoding="utf-8"))
    model = manifest["models"][0]
    spatial = [x for x in model["layers"] if len(x.get("output_shape", [])) == 3]
    if not spatial:
        raise SystemExit("the report has no layer with maps to show")
    if layer is None:
        chosen = spatial[0]  # the first layer: colour filters, maps that look like the photo
    else:
        matches = [x for x in model["layers"] if x["name"] == layer]
        if not matches:
            names = ", ".join(x["name"] for x in model["layers"])
            raise SystemExit(f"no layer {layer!r} in the report; it has: {names}")
        chosen = matches[0]
    sources = {i["id"]: i["source"] for i in manifest["inputs"]}
    inputs = list(chosen["selected"])
    # The cat photo when the report has it (the sample report does), else the first input.
    shown = next((i for i in inputs if "cat" in sources.get(i, "")), inputs[0])
    channel = chosen["selected"][shown][0]
    # the layer's channel_page pattern: .../c{channel:04d}.html
    channel_page = chosen["channel_page"].replace("{channel:04d}", f"{channel:04d}")
    # "why" and the class page: the coffee photo (espresso) when the report has it
    why = next((i for i in model["input_pages"] if "coffee" in sources.get(i, "")), shown)
    top = model["predictions"][why][0]["index"]
    class_page = next((c["page"] for c in model.get("classes", []) if c["index"] == top), None)
    extra = {"why": model["input_pages"][why]} if class_page else {}
    if class_page:
        extra["class"] = class_page
    return {
        "index": "index.html",
        "layer": chosen["page"],
        "input-layer": chosen["detail_pages"][shown],
        "channel": channel_page,
        "input": model["input_pages"][shown],
        "compare": model["compare_page"],
        **extra,
    }


def shrink(png: bytes) -> bytes:
    image = Image.open(io.BytesIO(png)).convert("RGB")
    small = image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    out = io.BytesIO()
    small.save(out, format="PNG", optimize=True)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--report", type=Path, default=REPO / "sample-report")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    parser.add_argument(
        "--widths",
        default="1440,375",
        help="viewport widths, comma-separated: the first writes NAME.png, others NAME-W.png",
    )
    parser.add_argument("--height", type=int, default=800)
    parser.add_argument("--scheme", choices=["light", "dark"], default="light")
    parser.add_argument("--layer", help="layer to show (default: the third with maps)")
    args = parser.parse_args(argv)

    report = args.report.resolve()
    if not (report / "manifest.json").is_file():
        print(f"no report at {report}: build it first with `make sample`", file=sys.stderr)
        return 2
    if not Path(args.chromium).is_file():
        print(f"Chromium not found at {args.chromium} (apt-get install chromium)", file=sys.stderr)
        return 2
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        print("playwright is missing: pip install -e '.[test]'", file=sys.stderr)
        return 2

    pages = pick_pages(report, args.layer)
    args.out.mkdir(parents=True, exist_ok=True)
    widths = [int(w) for w in args.widths.split(",") if w.strip()]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium, headless=True, args=ARGS)
        for width in widths:
            suffix = "" if width == widths[0] else f"-{width}"
            shoot(browser, report, pages, args, width, suffix)
        browser.close()
    return 0


def shoot(
    browser: Any, report: Path, pages: dict[str, str], args: Any, width: int, suffix: str
) -> None:
    """Every page at one viewport width, one screen or so high (TALL)."""
    context = browser.new_context(
        viewport={"width": width, "height": args.height},
        color_scheme=args.scheme,
        device_scale_factor=1,
    )
    page = context.new_page()
    for name, rel in pages.items():
        if suffix and name in WIDE_ONLY:
            continue
        page.goto((report / rel).as_uri())
        page.evaluate(
            "document.querySelectorAll('img[loading=lazy]').forEach(i => { i.loading = 'eager'; })"
        )
        # (wait_for_function would eval a string, which the report's CSP refuses)
        for _ in range(300):
            if page.evaluate("Array.from(document.images).every(i => i.complete)"):
                break
            page.wait_for_timeout(100)
        top = 0
        if name in FROM:
            found = page.evaluate(
                "(e => e ? e.getBoundingClientRect().top + window.scrollY - 8 : 0)"
                f"(document.getElementById('{FROM[name]}'))"
            )
            top = int(found)
        height = min(page.evaluate("document.documentElement.scrollHeight") - top, TALL[name])
        clip = {"x": 0, "y": top, "width": width, "height": max(height, args.height)}
        png = shrink(page.screenshot(full_page=True, clip=clip))
        target = args.out / f"{name}{suffix}.png"
        target.write_bytes(png)
        print(
            f"{target.relative_to(REPO) if target.is_relative_to(REPO) else target}: "
            f"{rel} ({len(png) // 1024} KB)"
        )
    context.close()


if __name__ == "__main__":
    raise SystemExit(main())
