"""Downloading image URLs given as inputs, with firm limits.

Only ``http`` and ``https`` are fetched, with the standard library (urllib). Every
download is bounded: a connect/read timeout, an overall deadline (a server that
drips one byte a second cannot hold a run forever), a byte cap checked against
``Content-Length`` before reading and again while reading, a cap on redirects
(loops are refused), and a ``Content-Type`` check that refuses what is plainly not
an image (HTML, text, JSON). What comes back is only bytes: the caller decodes
them with the same pixel limits as local files.
"""

from __future__ import annotations

import re
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from http.client import HTTPMessage
from typing import IO, Any

from reportgen import __version__
from reportgen.errors import ReportgenError

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


def _opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(_LimitedRedirects())


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
    started = time.monotonic()
    try:
        with _opener().open(request, timeout=timeout) as response:
            return _read_limited(url, response, started, deadline, max_bytes)
    except FetchError:
        raise
    except urllib.error.HTTPError as exc:
        if exc.code in (301, 302, 303, 307, 308) or "redirect" in str(exc.reason).lower():
            raise FetchError(
                f"{url!r}: too many redirects or a redirect loop (more than "
                f"{MAX_REDIRECTS}, or back to a page already visited)"
            ) from None
        raise FetchError(f"{url!r}: the server answered HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, TimeoutError) or "timed out" in str(reason):
            raise FetchError(f"{url!r}: no answer within {timeout:g} s (timed out)") from None
        raise FetchError(f"{url!r}: cannot connect ({reason})") from None
    except TimeoutError:
        raise FetchError(f"{url!r}: no answer within {timeout:g} s (timed out)") from None
    except (OSError, ValueError) as exc:  # reset connections, bad status lines, bad URLs
        raise FetchError(f"{url!r}: download failed ({type(exc).__name__}: {exc})") from None


def _read_limited(
    url: str, response: Any, started: float, deadline: float, max_bytes: int
) -> Fetched:
    headers = response.headers
    content_type = headers.get_content_type() if headers.get("Content-Type") else None
    if content_type and NOT_IMAGE_TYPES.match(content_type):
        raise FetchError(f"{url!r} is not an image: the server says its content is {content_type}")
    length = headers.get("Content-Length")
    if length is not None and length.strip().isdigit() and int(length) > max_bytes:
        raise FetchError(f"{url!r} is {int(length):,} bytes, more than the limit of {max_bytes:,}")
    chunks: list[bytes] = []
    total = 0
    while True:
        if time.monotonic() - started > deadline:
            raise FetchError(f"{url!r}: download took longer than {deadline:g} s; gave up")
        chunk = response.read1(CHUNK) if hasattr(response, "read1") else response.read(CHUNK)
        if not chunk:
            break
        total += len(chunk)
        if total > max_bytes:
            raise FetchError(f"{url!r} is larger than the limit of {max_bytes:,} bytes")
        chunks.append(chunk)
    data = b"".join(chunks)
    if not data:
        raise FetchError(f"{url!r}: the server sent no data (0 bytes)")
    return Fetched(url, response.geturl(), data, content_type)
