"""Page weight over a link and Lighthouse scores: the heaviest page of each kind of a report.

    python benchmarks/dataset_bench.py ...          # or any way of making a report
    python benchmarks/page_weight.py REPORT --lighthouse /tmp/lh/node_modules/.bin/lighthouse

For each page kind (index, gallery, model, compare, input, layer, channel, input-layer)
the page that pulls the most bytes (HTML, CSS, JS and every picture it references:
reportgen.tools.pageweight), its files, what its first screen needs, its element count,
and, with --lighthouse, Lighthouse's mobile performance score (default throttling), its
layout shift, its largest paint and total blocking time. The report is served over HTTP
on 127.0.0.1 (Lighthouse runs Debian's Chromium: CHROME_PATH, never a download).
Writes JSON (--json) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from reportgen.tools.pageweight import heaviest_pages  # noqa: E402


def serve(root: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def lighthouse(tool: str, url: str, chromium: str) -> dict[str, Any]:
    """Mobile, default throttling: performance score and the audits that explain it."""
    env = {**os.environ, "CHROME_PATH": chromium}
    done = subprocess.run(
        [tool, url, "--quiet", "--output=json", "--only-categories=performance,seo",
         "--chrome-flags=--headless=new --no-sandbox --disable-gpu"],
        capture_output=True, text=True, env=env, timeout=600, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1:] or ["failed"]}
    result = json.loads(done.stdout)
    audits = result["audits"]

    def numeric(name: str) -> float | None:
        return audits.get(name, {}).get("numericValue")

    return {
        "performance": round(100 * (result["categories"]["performance"]["score"] or 0)),
        "seo": round(100 * (result["categories"]["seo"]["score"] or 0)),
        "cls": numeric("cumulative-layout-shift"),
        "lcp_s": (numeric("largest-contentful-paint") or 0) / 1000,
        "tbt_ms": numeric("total-blocking-time"),
        "dom_elements": numeric("dom-size"),
        "console_errors": len(
            audits.get("errors-in-console", {}).get("details", {}).get("items", [])
        ),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("report", type=Path)
    parser.add_argument("--lighthouse", help="the lighthouse executable (npm install lighthouse)")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    root = args.report.resolve()
    rows: dict[str, dict[str, Any]] = {}
    for kind, transfer in sorted(heaviest_pages(root).items()):
        text = (root / transfer.page).read_text(encoding="utf-8")
        rows[kind] = {
            "page": transfer.page,
            "bytes": transfer.bytes,
            "files": transfer.files,
            "first_screen_bytes": transfer.first_screen_bytes,
            "elements": len(re.findall(r"<[a-zA-Z]", text)),
        }
    if args.lighthouse:
        server, base = serve(root)
        try:
            for kind, row in rows.items():
                row["lighthouse"] = lighthouse(args.lighthouse, base + row["page"], args.chromium)
                print(kind, row["lighthouse"], file=sys.stderr)
        finally:
            server.shutdown()
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    head = (
        "| page kind (heaviest) | transfer | files | first screen | elements | performance | CLS |"
    )
    print(head)
    print("|---|---:|---:|---:|---:|---:|---:|")
    for kind, row in rows.items():
        lh = row.get("lighthouse", {})
        shift = "" if lh.get("cls") is None else round(lh["cls"], 3)
        print(
            f"| {kind} (`{row['page']}`) | {row['bytes'] / 1e6:.2f} MB | {row['files']} | "
            f"{row['first_screen_bytes'] / 1e6:.2f} MB | {row['elements']:,} | "
            f"{lh.get('performance', '')} | {shift} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
