"""Issue 4, part 2: http(s) image URLs as inputs, against a local server on 127.0.0.1.

Nothing here leaves the machine: the server runs on a thread in the test process,
bound to the loopback address, and proxies are switched off.
"""

from __future__ import annotations

import contextlib
import io
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

from reportgen.errors import ReportgenError
from reportgen.inputs import fetch
from reportgen.inputs.discovery import discover_inputs
from reportgen.inputs.fetch import FetchError
from reportgen.inputs.files import load_image
from tests.helpers import error_line, invoke

FAST = ("-m", "alexnet", "-l", "features.0", "--weights", "none", "--device", "cpu", "--jobs", "2")


def _png(colour: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), colour).save(buffer, "PNG")
    return buffer.getvalue()


PNG = _png()


class Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # keep test output clean
        return None

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str | None = "image/png",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: C901 - one branch per scenario
        path = self.path
        if path == "/cat.png":
            self._send(200, PNG)
        elif path == "/no-type.png":
            self._send(200, PNG, content_type=None)
        elif path == "/page.html":
            self._send(200, b"<html><body>hello</body></html>", "text/html; charset=utf-8")
        elif path == "/liar.png":
            self._send(200, b"this is text, whatever the header says", "image/png")
        elif path == "/missing.png":
            self._send(404, b"not found", "text/plain")
        elif path == "/loop":
            self._send(302, b"", None, {"Location": "/loop"})
        elif path == "/ping":
            self._send(302, b"", None, {"Location": "/pong"})
        elif path == "/pong":
            self._send(302, b"", None, {"Location": "/ping"})
        elif path.startswith("/chain/"):
            n = int(path.rsplit("/", 1)[1])
            self._send(302, b"", None, {"Location": f"/chain/{n + 1}"})
        elif path == "/to-file":
            self._send(302, b"", None, {"Location": "file:///etc/passwd"})
        elif path == "/moved.png":
            self._send(301, b"", None, {"Location": "/cat.png"})
        elif path == "/big-declared.png":
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(10**12))
            self.end_headers()
            self.wfile.write(b"\0" * 1024)
        elif path == "/big-undeclared.png":
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.end_headers()  # no length: read until close
            try:
                for _ in range(64):
                    self.wfile.write(b"\0" * 65536)
            except OSError:
                pass
        elif path == "/silent.png":
            time.sleep(1.5)  # answers later than the client waits
            with contextlib.suppress(OSError):
                self._send(200, PNG)
        elif path == "/drip.png":
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.end_headers()
            try:
                for _ in range(40):  # a byte every 50 ms: every read succeeds, slowly
                    self.wfile.write(b"\0")
                    self.wfile.flush()
                    time.sleep(0.05)
            except OSError:
                pass
        else:
            self._send(404, b"no", "text/plain")


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "http_proxy",
        "https_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "all_proxy",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


# ---------------------------------------------------------------- the fetcher


def test_image_url_is_fetched(server: str) -> None:
    got = fetch.fetch(f"{server}/cat.png", timeout=5)
    assert got.data == PNG and got.content_type == "image/png"


def test_redirect_to_an_image_is_followed(server: str) -> None:
    got = fetch.fetch(f"{server}/moved.png", timeout=5)
    assert got.data == PNG and got.final_url.endswith("/cat.png")


def test_timeout_when_the_server_does_not_answer(server: str) -> None:
    started = time.monotonic()
    with pytest.raises(FetchError, match=r"silent\.png.*timed out"):
        fetch.fetch(f"{server}/silent.png", timeout=0.3)
    assert time.monotonic() - started < 1.4


def test_deadline_when_the_server_drips(server: str) -> None:
    started = time.monotonic()
    with pytest.raises(FetchError, match=r"drip\.png.*longer than 0\.5 s"):
        fetch.fetch(f"{server}/drip.png", timeout=1, deadline=0.5)
    assert time.monotonic() - started < 1.5


def test_size_cap_from_content_length(server: str) -> None:
    with pytest.raises(FetchError, match=r"big-declared\.png.*1,000,000,000,000 bytes.*limit"):
        fetch.fetch(f"{server}/big-declared.png", timeout=5, max_bytes=100_000)


def test_size_cap_while_reading(server: str) -> None:
    with pytest.raises(FetchError, match=r"big-undeclared\.png.*larger than the limit of 100,000"):
        fetch.fetch(f"{server}/big-undeclared.png", timeout=5, max_bytes=100_000)


def test_non_image_content_type(server: str) -> None:
    with pytest.raises(FetchError, match=r"page\.html.*not an image.*text/html"):
        fetch.fetch(f"{server}/page.html", timeout=5)


def test_image_content_type_with_non_image_bytes(server: str) -> None:
    files, skipped = discover_inputs([f"{server}/liar.png"])
    assert not skipped
    with pytest.raises(ReportgenError, match=r"liar\.png.*not an image"):
        load_image(files[0])


def test_http_404(server: str) -> None:
    with pytest.raises(FetchError, match=r"missing\.png.*HTTP 404"):
        fetch.fetch(f"{server}/missing.png", timeout=5)


@pytest.mark.parametrize("start", ["/loop", "/ping", "/chain/0"])
def test_redirect_loops_and_chains(server: str, start: str) -> None:
    with pytest.raises(FetchError, match="redirect"):
        fetch.fetch(f"{server}{start}", timeout=5)


def test_redirect_to_another_scheme_refused(server: str) -> None:
    with pytest.raises(FetchError, match=r"redirects to 'file:///etc/passwd'.*only http"):
        fetch.fetch(f"{server}/to-file", timeout=5)


def test_connection_refused() -> None:
    import socket

    with socket.socket() as probe:  # a port that nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(FetchError, match="cannot connect"):
        fetch.fetch(f"http://127.0.0.1:{port}/x.png", timeout=2)


def test_other_schemes_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ReportgenError, match="only http:// and https://"):
        discover_inputs(["file:///etc/passwd"])
    with pytest.raises(FetchError, match="only http and https"):
        fetch.fetch("ftp://127.0.0.1/x.png")


# ---------------------------------------------------------------- through the CLI


def test_url_input_in_a_report_shows_the_url(server: str, tmp_path: Path) -> None:
    local = tmp_path / "local.png"
    local.write_bytes(_png((0, 90, 200)))
    url = f"{server}/cat.png"
    bad = f"{server}/missing.png"
    result = invoke("run", url, str(local), bad, "-o", str(tmp_path / "report"), *FAST)
    assert result.exit_code == 0, (result.stderr, result.exception)
    assert any(
        line.startswith("Warning:") and bad in line and "404" in line
        for line in result.stderr.splitlines()
    ), result.stderr
    manifest = json.loads((tmp_path / "report" / "manifest.json").read_text(encoding="utf-8"))
    sources = [i["source"] for i in manifest["inputs"]]
    assert url in sources and local.name in sources
    index = (tmp_path / "report" / "index.html").read_text(encoding="utf-8")
    assert url in index
    assert bad in index.split("Skipped inputs", 1)[1]


def test_only_input_a_failing_url_is_one_error_line(server: str, tmp_path: Path) -> None:
    bad = f"{server}/page.html"
    result = invoke("run", bad, "-o", str(tmp_path / "report"), *FAST)
    assert result.exit_code == 1
    line = error_line(result, None)
    assert bad in line and "text/html" in line
    assert not (tmp_path / "report").exists()
