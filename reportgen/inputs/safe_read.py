"""Reading a file the user named, safely: only a regular file (never a FIFO, a device or
a socket, which would block or never end), never more than a limit of bytes, and names
shown with their controls escaped (``printable``). Every stage that reads a file it was
given, or shows its name, uses these.
"""

from __future__ import annotations

import os
import stat
import unicodedata
from pathlib import Path

from reportgen.errors import ReportgenError

# Bytes read from one image file (or URL, see fetch.MAX_BYTES) at most.
MAX_FILE_BYTES = 256 * 1024 * 1024


_FILE_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISDIR, "a folder"),
)


def not_regular_reason(mode: int) -> str | None:
    """Why a file of ``mode`` (from stat, links followed) is not read; None: a regular file."""
    if stat.S_ISREG(mode):
        return None
    kind = next((name for test, name in _FILE_KINDS if test(mode)), "a special file")
    return f"is {kind}, not a regular file; not read"


class NotRegularFile(OSError):
    """A path that is no regular file (the message says what it is)."""


class FileTooLarge(OSError):
    """A file over the byte limit; ``size`` is its st_size when that already says so."""

    def __init__(self, size: int | None) -> None:
        super().__init__(f"larger than the limit ({size})")
        self.size = size


def read_regular_file(path: Path, limit: int) -> bytes:
    """The bytes of ``path``, a regular file of at most ``limit`` bytes.

    Opened without blocking (a FIFO put in place after a folder was listed cannot hang a
    run), checked to be a regular file on the open descriptor, and read up to one byte
    past the limit whatever ``st_size`` says (files in /proc report 0 and grow). Raises
    NotRegularFile, FileTooLarge, or the OSError of the open or read.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    with os.fdopen(fd, "rb", buffering=0) as handle:
        info = os.fstat(fd)
        reason = not_regular_reason(info.st_mode)
        if reason is not None:
            raise NotRegularFile(reason)
        if info.st_size > limit:
            raise FileTooLarge(info.st_size)
        chunks: list[bytes] = []
        total = 0
        while total <= limit:
            chunk = handle.read(min(1 << 20, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    if total > limit:
        raise FileTooLarge(None)
    return b"".join(chunks)


def read_input_bytes(path: Path, source: str, limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of one input file (``read_regular_file``), or ReportgenError naming
    ``source`` and the reason."""
    try:
        return read_regular_file(path, limit)
    except NotRegularFile as exc:
        raise ReportgenError(f"{source!r} {exc}") from exc
    except FileTooLarge as exc:
        if exc.size is not None:
            raise ReportgenError(
                f"{source!r} is {exc.size:,} bytes, more than the limit of "
                f"{limit:,} for one image file"
            ) from exc
        raise ReportgenError(
            f"{source!r} is more than the limit of {limit:,} bytes for one image file"
        ) from exc
    except OSError as exc:
        raise ReportgenError(f"cannot read {source!r}: {exc.strerror or exc}") from exc


# Shown escaped: C0/C1 controls, undecodable bytes, HTML's noncharacters and the
# bidirectional overrides that can make "gnp.exe" read as "exe.png".
_BIDI_CONTROLS = frozenset(range(0x202A, 0x202F)) | frozenset(range(0x2066, 0x206A))


def printable(text: str) -> str:
    """``text`` with characters that cannot be shown as they are written as escapes.

    File names may hold any byte but ``/`` and NUL: a newline would split a log line,
    a control character makes HTML invalid, and bytes that are not UTF-8 (which
    Python keeps as lone surrogates) cannot be written to a UTF-8 page at all. Plain
    names are returned unchanged.
    """
    if text.isprintable() and text.isascii():
        return text
    out = []
    for ch in text:
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte, kept by surrogateescape
            out.append(f"\\x{code - 0xDC00:02x}")
        elif (
            unicodedata.category(ch) in ("Cc", "Cs")
            or code in _BIDI_CONTROLS
            or 0xFDD0 <= code <= 0xFDEF
            or (code & 0xFFFE) == 0xFFFE
        ):
            out.append(ch.encode("unicode_escape").decode("ascii"))
        else:
            out.append(ch)
    return "".join(out)
