"""Issue 15, class 3: one deadline for the whole exchange of a URL input.

Connect, status line, headers, redirects and body share one deadline: a server that
drips its status line or headers, never answers, or spreads its time over redirects
cannot hold a run longer than ``DEADLINE_S``. Against a raw socket server on 127.0.0.1
(every handler ends by itself within a few seconds; proxies are off).
"""

from __future__ import annotations

import io
import socket
import socketserver
import threading
import time
from collections.abc import Iterator

import pytest
from PIL import Image

from reportgen.inputs.fetch import FetchError, fetch


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 30, 30)).save(buffer, "PNG")
    return buffer.getvalue()


PNG = _png()
ANSWER = (
    b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: "
    + str(len(PNG)).encode()
    + b"\r\nConnection: close\r\n\r\n"
)
DRIP_S = 0.05  # between two bytes of a dripped part
HANDLER_LIMIT_S = 6.0  # every handler gives up by then


class Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        started = time.monotonic()
        self.request.settimeout(HANDLER_LIMIT_S)
        try:
            request = self.request.recv(4096).decode("latin-1")
            path = request.split(" ", 2)[1] if " " in request else "/"
            if path == "/fast.png":
                self.request.sendall(ANSWER + PNG)
            elif path == "/drip-status.png":
                self._drip(ANSWER, started)
                self.request.sendall(PNG)
            elif path == "/drip-headers.png":
                self.request.sendall(b"HTTP/1.1 200 OK\r\n")
                self._drip(ANSWER.split(b"\r\n", 1)[1], started)
                self.request.sendall(PNG)
            elif path == "/drip-body.png":
                self.request.sendall(ANSWER)
                self._drip(PNG, started)
            elif path == "/silent.png":
                time.sleep(3.0)  # then gives up without a word
            elif path.startswith("/slow-redirect/"):
                hop = int(path.rsplit("/", 1)[1])
                time.sleep(0.35)
                self.request.sendall(
                    b"HTTP/1.1 302 Found\r\nLocation: /slow-redirect/"
                    + str(hop + 1).encode()
                    + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                )
        except OSError:
            return  # the client hung up: what the deadline is for

    def _drip(self, data: bytes, started: float) -> None:
        for i in range(len(data)):
            if time.monotonic() - started > HANDLER_LIMIT_S:
                return
            self.request.sendall(data[i : i + 1])
            time.sleep(DRIP_S)


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with Server(("127.0.0.1", 0), Handler) as running:
        thread = threading.Thread(target=running.serve_forever, kwargs={"poll_interval": 0.1})
        thread.daemon = True
        thread.start()
        try:
            yield f"http://127.0.0.1:{running.server_address[1]}"
        finally:
            running.shutdown()
            thread.join(10)


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("ALL_PROXY", raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


def test_a_fast_answer_still_comes_through(server: str) -> None:
    assert fetch(f"{server}/fast.png", deadline=5.0).data == PNG


@pytest.mark.parametrize(
    "path",
    ["/drip-status.png", "/drip-headers.png", "/drip-body.png", "/silent.png"],
)
def test_deadline_holds_in_every_part_of_the_exchange(server: str, path: str) -> None:
    """Each dripped byte comes well within the read timeout; the whole is too slow."""
    started = time.monotonic()
    with pytest.raises(FetchError) as caught:
        fetch(f"{server}{path}", timeout=4.0, deadline=1.0)
    elapsed = time.monotonic() - started
    assert "took longer than 1 s" in str(caught.value), str(caught.value)
    assert elapsed < 2.0, f"{path}: {elapsed:.1f} s for a 1 s deadline"


def test_deadline_spans_redirects(server: str) -> None:
    started = time.monotonic()
    with pytest.raises(FetchError, match="took longer than 1 s"):
        fetch(f"{server}/slow-redirect/0", timeout=4.0, deadline=1.0)
    assert time.monotonic() - started < 1.6


def test_deadline_covers_the_connect(monkeypatch: pytest.MonkeyPatch) -> None:
    """A name lookup that hangs is not waited for past the deadline."""
    real = socket.getaddrinfo

    def slow_lookup(*args: object, **kwargs: object) -> object:
        time.sleep(3.0)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", slow_lookup)
    started = time.monotonic()
    with pytest.raises(FetchError, match="took longer than 0.5 s"):
        fetch("http://127.0.0.1:9/x.png", timeout=4.0, deadline=0.5)
    assert time.monotonic() - started < 1.5
