"""Finding input images and reading them as upright RGB pictures.

No torch here: this stage turns paths into Pillow images and says which
inputs could not be used and why.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import re
import shutil
import stat
import tempfile
import unicodedata
import urllib.parse
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageOps

from reportgen.errors import ReportgenError
from reportgen.inputs import fetch

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
)
# Pixels (not bytes) above which an image is refused before it is decoded. Pillow's
# own default warns at about 89 Mpx; a report has no use for pictures that large.
MAX_PIXELS = 64_000_000
# Bytes read from one image file (or URL, see fetch.MAX_BYTES) at most.
MAX_FILE_BYTES = 256 * 1024 * 1024
# Pixels any picture made from an input may have: the network's view and the picture
# the preprocessing resizes it to before cropping (a 30000x1 strip resized to 256 px on
# its short side would be 7,680,000x256). Checked on the header, before decoding, and
# again before resizing.
MAX_VIEW_PIXELS = 16_000_000
# Background that transparent pixels are composited on.
BACKGROUND_RGB = (255, 255, 255)
EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True)
class InputFile:
    """One image file to analyse: where it is and the stable id the report uses."""

    path: Path
    source: str  # as the user would recognise it (relative to the argument given)
    id: str


@dataclass
class LoadedImage:
    file: InputFile
    image: Image.Image  # RGB, upright
    sha256: str
    notes: list[str] = field(default_factory=list)

    @property
    def width(self) -> int:
        return self.image.width

    @property
    def height(self) -> int:
        return self.image.height


@dataclass(frozen=True)
class SkippedInput:
    source: str
    reason: str


# Sizes of a preprocessing: torchvision's resize (one number: the short side; two: height
# and width) and centre crop (one number: a square; two: height and width).
ViewSizes = tuple[Sequence[int], Sequence[int]]


def resized_size(width: int, height: int, resize: Sequence[int]) -> tuple[int, int]:
    """(width, height) of a ``width`` x ``height`` picture after torchvision's resize to
    ``resize`` (the rule of ``torchvision.transforms.functional.resize``)."""
    if len(resize) >= 2:
        return int(resize[1]), int(resize[0])
    short, long = (width, height) if width <= height else (height, width)
    new_short = int(resize[0])
    new_long = int(new_short * long / max(short, 1))
    return (new_short, new_long) if width <= height else (new_long, new_short)


def check_view_size(source: str, width: int, height: int, sizes: ViewSizes) -> None:
    """Raise ReportgenError when the preprocessing ``sizes`` (resize, crop) would make a
    picture of more than ``MAX_VIEW_PIXELS`` from a ``width`` x ``height`` input."""
    resize, crop = sizes
    pictures = [("resize", resized_size(width, height, resize))]
    crop_pair = (int(crop[-1]), int(crop[0])) if crop else (0, 0)
    pictures.append(("crop", crop_pair))
    for step, (new_width, new_height) in pictures:
        if new_width * new_height > MAX_VIEW_PIXELS:
            what = (
                f"resizing it to {'x'.join(map(str, resize))} would make "
                if step == "resize"
                else "its centre crop would be "
            )
            raise ReportgenError(
                f"{source!r} is {width}x{height} pixels: {what}{new_width}x{new_height} "
                f"({new_width * new_height:,} pixels), more than the limit of "
                f"{MAX_VIEW_PIXELS:,} for one view; refusing it"
            )


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


def input_id(source: str, unique: str | None = None) -> str:
    """A readable, file-name-safe id that differs for different sources.

    The stem keeps it readable; a hash of the whole source (or of ``unique``, e.g. a
    full URL) keeps ``a/cat.jpg`` and ``b/cat.jpg`` apart.
    """
    stem = Path(source).stem
    slug = re.sub(r"[^A-Za-z0-9]+", "-", stem).strip("-").lower()[:40] or "image"
    key = source if unique is None else unique
    digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    return f"{slug}-{digest}"


def shown_arguments(arguments: Iterable[str]) -> dict[str, str]:
    """How a report names each local input argument (URLs are left out: they are shown as
    they are). As typed when every one is a relative path inside the current folder;
    otherwise each relative to the folder that holds them all, so that no absolute path
    of the building machine is in a report, and the same inputs make the same report
    wherever they lie."""
    local = [a for a in arguments if not (fetch.is_url(a) or fetch.looks_like_other_url(a))]

    def inside(argument: str) -> bool:
        norm = os.path.normpath(argument)
        return not (
            os.path.isabs(argument) or norm == os.pardir or norm.startswith(os.pardir + os.sep)
        )

    if all(inside(a) for a in local):
        return {a: a for a in local}
    absolute = {a: os.path.abspath(a) for a in local}
    try:
        base = os.path.commonpath([os.path.dirname(p) for p in absolute.values()])
    except ValueError:  # paths on different drives (Windows): names alone
        return {a: os.path.basename(p) or p for a, p in absolute.items()}
    return {a: os.path.relpath(p, base) for a, p in absolute.items()}


def discover_inputs(arguments: Iterable[str]) -> tuple[list[InputFile], list[SkippedInput]]:
    """Expand files and folders into a sorted, de-duplicated list of image files.

    A folder is searched recursively for files with an image suffix; a file named
    directly is always tried, whatever its suffix. An argument that does not exist
    is skipped with a reason while other arguments give inputs, and raises when
    nothing else was found (so a lone typo fails at once); unreadable entries found
    inside folders are reported as skipped.
    """
    found: dict[str, InputFile] = {}
    skipped: list[SkippedInput] = []
    missing: list[ReportgenError] = []
    seen: set[str] = set()  # real paths: imgs/../imgs and imgs name the same files

    def first_time(path: Path) -> bool:
        real = os.path.realpath(path)
        if real in seen:
            return False
        seen.add(real)
        return True

    arguments = list(arguments)
    shown = shown_arguments(arguments)  # what the report calls each one
    for argument in arguments:
        if fetch.is_url(argument):
            if argument not in found:
                try:
                    found[argument] = _download(argument)
                except ReportgenError as exc:
                    skipped.append(SkippedInput(argument, str(exc)))
            continue
        if fetch.looks_like_other_url(argument):
            raise ReportgenError(
                f"input {argument!r}: only http:// and https:// URLs can be inputs"
            )
        path, name = Path(argument), shown[argument]
        if not path.exists():
            reason = (
                "is a symbolic link to nothing (or a link loop)"
                if path.is_symlink()
                else "does not exist"
            )
            missing.append(ReportgenError(f"input {argument!r} {reason}"))
            skipped.append(SkippedInput(printable(name), reason))
            continue
        if path.is_dir():
            for file_path, problem in _walk_images(path):
                raw = os.path.join(name, os.path.relpath(file_path, path))
                if problem:
                    skipped.append(SkippedInput(printable(raw), problem))
                    continue
                if raw not in found and first_time(file_path):
                    found[raw] = InputFile(file_path, printable(raw), input_id(printable(raw), raw))
        elif name not in found:
            problem = _regular_file_problem(path)
            if problem is not None:
                missing.append(ReportgenError(f"input {printable(argument)!r} {problem}"))
                skipped.append(SkippedInput(printable(name), problem))
                continue
            if first_time(path):
                found[name] = InputFile(path, printable(name), input_id(printable(name), name))
    if missing and not found:
        raise missing[0]
    files = sorted(found.values(), key=lambda f: f.source)
    return files, skipped


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


_download_dir: Path | None = None
_download_lock: int | None = None
DOWNLOADS_PREFIX = "reportgen-downloads-"
_DOWNLOADS_LOCK = ".in-use"


def _downloads() -> Path:
    """A private temporary folder for downloaded inputs, removed when Python exits. It is
    locked while this process lives (flock, dropped by the kernel at any death): a later
    run removes the folders that killed runs left (``sweep_downloads``)."""
    global _download_dir, _download_lock
    if _download_dir is None or not _download_dir.is_dir():
        sweep_downloads()
        _download_dir = Path(tempfile.mkdtemp(prefix=DOWNLOADS_PREFIX))
        _download_lock = _lock_file(_download_dir / _DOWNLOADS_LOCK)
        atexit.register(shutil.rmtree, _download_dir, True)
    return _download_dir


def _lock_file(path: Path) -> int | None:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        return None
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def sweep_downloads(folder: str | None = None) -> list[Path]:
    """Remove download folders of runs that are gone (their lock is free); returns them.
    Folders of live runs, and anything that is not reportgen's, stay."""
    removed = []
    base = Path(folder or tempfile.gettempdir())
    try:
        candidates = [p for p in base.iterdir() if p.name.startswith(DOWNLOADS_PREFIX)]
    except OSError:
        return []
    for candidate in candidates:
        if candidate == _download_dir or candidate.is_symlink() or not candidate.is_dir():
            continue
        lock = candidate / _DOWNLOADS_LOCK
        if not lock.is_file() or lock.is_symlink():
            continue  # not one this version of reportgen made
        fd = _lock_file(lock)
        if fd is None:
            continue  # a live run's
        try:
            shutil.rmtree(candidate, ignore_errors=True)
            removed.append(candidate)
        finally:
            os.close(fd)
    return removed


_downloaded: dict[str, InputFile] = {}


def _download(url: str) -> InputFile:
    """Fetch an image URL (within fetch's limits) into a temporary file, once per
    process: a second discovery of the same URL (e.g. a rebuild check) reuses it."""
    known = _downloaded.get(url)
    if known is not None and known.path.is_file():
        return known
    fetched = fetch.fetch(url)
    ident = input_id(urllib.parse.urlsplit(url).path or url, url)
    target = _downloads() / f"{ident}.download"
    target.write_bytes(fetched.data)
    _downloaded[url] = InputFile(target, printable(url), ident)
    return _downloaded[url]


# A cache folder says so with a tag file (https://bford.info/cachedir/, which tar's
# --exclude-caches and backup tools honour): its pictures are never inputs, also when the
# cache lies inside an input folder (XDG_CACHE_HOME=./.cache). reportgen tags its own
# (results.store.tag_cache).
CACHE_TAG = "CACHEDIR.TAG"
CACHE_TAG_SIGNATURE = b"Signature: 8a477f597d28d172789f06886806bc55"


def is_tagged_cache(directory: Path) -> bool:
    """``directory`` holds a cache directory tag (a regular file that starts with the
    signature)."""
    try:
        with (directory / CACHE_TAG).open("rb") as handle:
            return handle.read(len(CACHE_TAG_SIGNATURE)) == CACHE_TAG_SIGNATURE
    except OSError:
        return False


def _walk_images(folder: Path) -> Iterator[tuple[Path, str | None]]:
    """Image files below ``folder`` in sorted order; symlink loops are not followed, and
    cache folders below it (``is_tagged_cache``) are not entered."""
    seen_dirs: set[tuple[int, int]] = set()

    def visit(directory: Path) -> Iterator[tuple[Path, str | None]]:
        try:
            stat = directory.stat()
        except OSError as exc:
            yield directory, f"cannot read folder: {exc.strerror or exc}"
            return
        key = (stat.st_dev, stat.st_ino)
        if key in seen_dirs:
            return  # a symlink back to a folder already visited
        seen_dirs.add(key)
        try:
            entries = sorted(directory.iterdir(), key=lambda p: p.name)
        except OSError as exc:
            yield directory, f"cannot read folder: {exc.strerror or exc}"
            return
        for entry in entries:
            try:
                is_dir = entry.is_dir()
            except OSError as exc:  # e.g. a symlink that loops onto itself
                yield entry, f"cannot read: {exc.strerror or exc}"
                continue
            if is_dir:
                if not is_tagged_cache(entry):
                    yield from visit(entry)
            elif entry.suffix.lower() in IMAGE_SUFFIXES:
                if not entry.exists():
                    yield entry, "broken symbolic link"
                else:
                    yield entry, _regular_file_problem(entry)

    yield from visit(folder)


def _regular_file_problem(path: Path) -> str | None:
    """Why ``path`` (links followed) is not read as an image; None for a regular file."""
    try:
        return not_regular_reason(path.stat().st_mode)
    except OSError as exc:
        return f"cannot read: {exc.strerror or exc}"


def load_image(file: InputFile, views: Sequence[ViewSizes] = ()) -> LoadedImage:
    """Read one file as an upright RGB image, or raise ReportgenError saying why not.

    Only a regular file is read, at most ``MAX_FILE_BYTES`` of it. ``views``: the
    (resize, crop) sizes of each preprocessing the image will go through; one that would
    make a picture of more than ``MAX_VIEW_PIXELS`` refuses the image before it is decoded.
    """
    data = read_input_bytes(file.path, file.source, MAX_FILE_BYTES)
    if not data:
        raise ReportgenError(f"{file.source!r} is empty (0 bytes)")
    notes: list[str] = []

    def check(width: int, height: int) -> None:
        for sizes in views:
            check_view_size(file.source, width, height, sizes)

    try:
        rgb = decode_rgb(data, notes, check)
    except ReportgenError as exc:
        message = str(exc)
        raise ReportgenError(
            message if message.startswith(repr(file.source)) else f"{file.source!r}: {message}"
        ) from exc
    return LoadedImage(file, rgb, hashlib.sha256(data).hexdigest(), notes)


def decode_rgb(
    data: bytes,
    notes: list[str],
    check_size: Callable[[int, int], None] | None = None,
) -> Image.Image:
    """Decode image bytes to an upright 8-bit RGB image; ``notes`` collects what was done.
    ``check_size(width, height)`` sees the size the header declares before anything is
    decoded (turning it upright swaps the sides, which no pixel count depends on), and
    may raise ReportgenError to refuse the image."""
    import io

    with warnings.catch_warnings():
        # Pillow's complaints about damaged metadata (EXIF, TIFF tags) are not news
        # for the user: the image either decodes or is skipped with a reason.
        warnings.simplefilter("ignore")
        # Pillow only warns for sizes between its two limits; make any bomb an error.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as opened:
                width, height = opened.size
                if width * height > MAX_PIXELS:
                    raise ReportgenError(
                        f"image declares {width}x{height} pixels, more than the limit of "
                        f"{MAX_PIXELS:,}; refusing to decode it"
                    )
                if check_size is not None:
                    check_size(width, height)
                frames = getattr(opened, "n_frames", 1)
                if frames > 1:
                    opened.seek(0)
                    notes.append(f"first of {frames} frames used")
                opened.load()
                orientation = opened.getexif().get(EXIF_ORIENTATION, 1)
                upright = ImageOps.exif_transpose(opened)
                if orientation not in (None, 1):
                    notes.append(f"turned upright as its EXIF orientation ({orientation}) says")
                return to_rgb(upright, notes)
        except ReportgenError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ReportgenError(f"refusing a decompression bomb ({exc})") from exc
        except Image.UnidentifiedImageError as exc:
            raise ReportgenError("not an image Pillow can read") from exc
        except MemoryError as exc:
            raise ReportgenError("not enough memory to decode this image") from exc
        except Exception as exc:  # noqa: BLE001 - Pillow's decoders raise many kinds
            # (OSError, ValueError, SyntaxError, EOFError, but also TypeError, KeyError,
            # struct.error... on damaged files): all mean the file cannot be used.
            detail = " ".join(str(exc).split())[:200] or type(exc).__name__
            raise ReportgenError(f"broken or truncated image ({detail})") from exc


def to_rgb(image: Image.Image, notes: list[str]) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB, compositing transparency on white."""
    mode = image.mode
    if mode == "RGB":
        return image.copy()
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        import numpy as np

        values = np.asarray(image, dtype=np.float64)
        if mode.startswith("I;16"):
            top = 65535.0
        else:
            top = float(values.max()) if values.size and values.max() > 255 else 255.0
        scaled = np.clip(values / max(top, 1e-12) * 255.0 + 0.5, 0, 255).astype(np.uint8)
        notes.append(f"{mode} pixels scaled to 8 bits")
        return Image.fromarray(scaled, "L").convert("RGB")
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        mode == "P" and "transparency" in image.info
    )
    if has_alpha:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*BACKGROUND_RGB, 255))
        notes.append("transparent pixels composited on white")
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode == "CMYK":
        notes.append("CMYK converted to RGB")
    return image.convert("RGB")
