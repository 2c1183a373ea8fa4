"""Downloading image URLs given as inputs, with firm limits.

Only ``http`` and ``https`` are fetched, with the standard library (urllib). Every
download is bounded: a connect/read timeout, one deadline for the whole exchange
(connect, TLS handshake, status line, headers, redirects, body: a server that drips
one byte a second anywhere cannot hold a run), a byte cap checked against
``Content-Length`` before reading and again while reading, a cap on redirects
(loops are refused), and a ``Content-Type`` check that refuses what is plainly not
an image (HTML, text, JSON). What comes back is only bytes: the caller decodes
them with the same pixel limits as local files.
"""

from __future__ import annotations

import contextlib
import http.client
import re
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from http.client import HTTPMessage
from typing import IO, Any, NoReturn

from reportgen.errors import ReportgenError
from reportgen.version import __version__

URL_PATTERN = re.compile(r"^https?://", re.IGNORECASE)
SCHEME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
ALLOWED_SCHEMES = ("http", "https")
# Seconds for connecting and for each read; and for the whole download.
TIMEOUT_S = 20.0
DEADLINE_S = 60.0
MAX_BYTES = 50 * 1024 * 1024
MAX_REDIRECTS = 5
CHUNK = 64 * 1024
# Content types that are surely not images. Anything else (image/*, octet-stream,
# no header at all) is read and left to the image decoder to accept or refuse.
NOT_IMAGE_TYPES = re.compile(
    r"^(text/|application/(json|xml|xhtml\+xml|javascript|pdf|zip|gzip)|audio/|video/)",
    re.IGNORECASE,
)


class FetchError(ReportgenError):
    """A URL input that could not be downloaded; the message names the URL."""


@dataclass(frozen=True)
class Fetched:
    url: str  # as given
    final_url: str  # after redirects
    data: bytes
    content_type: str | None


def is_url(text: str) -> bool:
    """True for ``http://`` and ``https://`` inputs."""
    return bool(URL_PATTERN.match(text))


def looks_like_other_url(text: str) -> bool:
    """True for ``ftp://``, ``file://`` and other schemes reportgen does not fetch."""
    return bool(SCHEME_PATTERN.match(text)) and not is_url(text)


class _LimitedRedirects(urllib.request.HTTPRedirectHandler):
    """Follows at most ``MAX_REDIRECTS`` redirects, only to http(s), never in a loop."""

    max_repeats = 1
    max_redirections = MAX_REDIRECTS

    def http_error_302(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: HTTPMessage,
    ) -> Any:
        location = headers.get("Location") or headers.get("URI")
        if location:
            newurl = urllib.parse.urljoin(req.full_url, location)
            scheme = urllib.parse.urlsplit(newurl).scheme.lower()
            if scheme not in ALLOWED_SCHEMES:
                raise FetchError(
                    f"{req.full_url!r} redirects to {newurl!r}; only http and https are followed"
                )
        return super().http_error_302(req, fp, code, msg, headers)

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302


class _Exchange:
    """The connections of one download, cut when its deadline passes.

    Every socket the download opens (one per redirect, or the proxy's) is made here;
    a duplicate of it is kept, and at the deadline a timer shuts the connection down
    through that duplicate (``shutdown`` acts on the connection, whichever descriptor,
    so it also ends a TLS handshake or a read blocked on the wrapped socket). A blocked
    read then returns at once, and ``fetch`` reports the deadline.
    """

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.ends_at = time.monotonic() + deadline
        self.expired = False
        self._lock = threading.Lock()
        self._handles: list[socket.socket] = []
        self._timer = threading.Timer(deadline, self.expire)
        self._timer.daemon = True

    def __enter__(self) -> _Exchange:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        with self._lock:
            handles, self._handles = self._handles, []
        for handle in handles:
            handle.close()

    def remaining(self) -> float:
        return max(0.0, self.ends_at - time.monotonic())

    def expire(self) -> None:
        with self._lock:
            self.expired = True
            handles = list(self._handles)
        for handle in handles:
            _shut(handle)

    def create_connection(
        self, address: tuple[str, int], timeout: Any = None, source_address: Any = None
    ) -> socket.socket:
        """``socket.create_connection`` within what is left of the deadline: the name
        lookup (on a thread, waited for no longer than the deadline) and each connect."""
        host, port = address
        addresses = self._resolve(host, port)
        error: OSError = OSError(f"cannot resolve {host!r}")
        for family, kind, proto, _name, where in addresses:
            left = self.remaining()
            if left <= 0:
                self.expire()
                raise TimeoutError("the download's deadline passed")
            limit = left if not isinstance(timeout, (int, float)) else min(float(timeout), left)
            sock = socket.socket(family, kind, proto)
            try:
                sock.settimeout(limit)
                if source_address:
                    sock.bind(source_address)
                sock.connect(where)
            except OSError as exc:
                sock.close()
                error = exc
                continue
            if isinstance(timeout, (int, float)):
                sock.settimeout(float(timeout))
            with self._lock:
                self._handles.append(sock.dup())
                expired = self.expired
            if expired:
                _shut(sock)
            return sock
        raise error

    def _resolve(self, host: str, port: int) -> list[Any]:
        """getaddrinfo, given no longer than the time left (a lookup that hangs is left
        behind on its daemon thread)."""
        found: list[Any] = []
        failed: list[BaseException] = []

        def lookup() -> None:
            try:
                found.extend(socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                failed.append(exc)

        worker = threading.Thread(target=lookup, name="reportgen-resolve", daemon=True)
        worker.start()
        worker.join(self.remaining())
        if worker.is_alive():
            self.expire()
            raise TimeoutError("the download's deadline passed while looking up the host")
        if failed:
            raise failed[0]
        return found


def _shut(handle: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed by the other side
        handle.shutdown(socket.SHUT_RDWR)


def _connection_class(base: type, exchange: _Exchange) -> Any:
    """``base`` (HTTPConnection or HTTPSConnection) whose sockets ``exchange`` makes."""

    def make(*args: Any, **kwargs: Any) -> Any:
        connection = base(*args, **kwargs)
        connection._create_connection = exchange.create_connection
        return connection

    return make


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, exchange: _Exchange) -> None:
        super().__init__()
        self.exchange = exchange

    def http_open(self, req: urllib.request.Request) -> Any:
        return self.do_open(_connection_class(http.client.HTTPConnection, self.exchange), req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, exchange: _Exchange) -> None:
        super().__init__()
        self.exchange = exchange

    def https_open(self, req: urllib.request.Request) -> Any:
        return self.do_open(
            _connection_class(http.client.HTTPSConnection, self.exchange),
            req,
            context=self._context,  # type: ignore[attr-defined]
        )


def _opener(exchange: _Exchange) -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(
        _LimitedRedirects(), _HTTPHandler(exchange), _HTTPSHandler(exchange)
    )


def fetch(
    url: str,
    *,
    timeout: float | None = None,
    deadline: float | None = None,
    max_bytes: int | None = None,
) -> Fetched:
    """Download ``url`` within the limits, or raise FetchError saying why not."""
    timeout = TIMEOUT_S if timeout is None else timeout
    deadline = DEADLINE_S if deadline is None else deadline
    max_bytes = MAX_BYTES if max_bytes is None else max_bytes
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        raise FetchError(f"{url!r}: only http and https URLs can be inputs")
    request = urllib.request.Request(
        url, headers={"User-Agent": f"reportgen/{__version__}", "Accept": "image/*"}
    )
    with _Exchange(deadline) as exchange:
        try:
            with _opener(exchange).open(request, timeout=timeout) as response:
                fetched = _read_limited(url, response, exchange, max_bytes)
        except FetchError:
            raise
        except Exception as exc:
            if exchange.expired:
                raise FetchError(_too_slow(url, deadline)) from None
            _raise_fetch_error(url, exc, timeout)
        return fetched


def _too_slow(url: str, deadline: float) -> str:
    return f"{url!r}: download took longer than {deadline:g} s; gave up"


def _raise_fetch_error(url: str, exc: Exception, timeout: float) -> NoReturn:
    """The one-line FetchError for an exception of urllib or http.client."""
    if isinstance(exc, urllib.error.HTTPError):
        if exc.code in (301, 302, 303, 307, 308) or "redirect" in str(exc.reason).lower():
            raise FetchError(
                f"{url!r}: too many redirects or a redirect loop (more than "
                f"{MAX_REDIRECTS}, or back to a page already visited)"
            ) from None
        raise FetchError(f"{url!r}: the server answered HTTP {exc.code} {exc.reason}") from None
    if isinstance(exc, urllib.error.URLError):
        reason = exc.reason
        if isinstance(reason, TimeoutError) or "timed out" in str(reason):
            raise FetchError(f"{url!r}: no answer within {timeout:g} s (timed out)") from None
        raise FetchError(f"{url!r}: cannot connect ({reason})") from None
    if isinstance(exc, TimeoutError):
        raise FetchError(f"{url!r}: no answer within {timeout:g} s (timed out)") from None
    if isinstance(exc, (OSError, ValueError, http.client.HTTPException)):
        # reset connections, bad status lines, bad URLs, answers cut short
        detail = " ".join(str(exc).split())[:200]
        raise FetchError(f"{url!r}: download failed ({type(exc).__name__}: {detail})") from None
    raise exc


def _read_limited(url: str, response: Any, exchange: _Exchange, max_bytes: int) -> Fetched:
    headers = response.headers
    content_type = headers.get_content_type() if headers.get("Content-Type") else None
    if content_type and NOT_IMAGE_TYPES.match(content_type):
        raise FetchError(f"{url!r} is not an image: the server says its content is {content_type}")
    length = headers.get("Content-Length")
    if (
        length is not None
        and re.fullmatch(r"[0-9]{1,30}", length.strip())
        and int(length) > max_bytes
    ):
        raise FetchError(f"{url!r} is {int(length):,} bytes, more than the limit of {max_bytes:,}")
    chunks: list[bytes] = []
    total = 0
    while True:
        if exchange.expired or exchange.remaining() <= 0:
            exchange.expire()
            raise FetchError(_too_slow(url, exchange.deadline))
        chunk = response.read1(CHUNK) if hasattr(response, "read1") else response.read(CHUNK)
        if not chunk:
            break
        total += len(chunk)
        if total > max_bytes:
            raise FetchError(f"{url!r} is larger than the limit of {max_bytes:,} bytes")
        chunks.append(chunk)
    if exchange.expired:  # the connection was cut: what was read is not the whole answer
        raise FetchError(_too_slow(url, exchange.deadline))
    data = b"".join(chunks)
    if not data:
        raise FetchError(f"{url!r}: the server sent no data (0 bytes)")
    return Fetched(url, response.geturl(), data, content_type)
