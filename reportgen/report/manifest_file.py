"""Reading a report's manifest.json: the one reader, for every part of reportgen.

``read_manifest`` takes a report folder, its manifest.json (or any JSON file), or a
``--single-file`` report (the manifest is embedded in its "Save manifest.json" link)
and returns the manifest with the sha256 of its bytes. Here, and only here, is
decided what the file is called, what makes it a reportgen manifest and what a bad
one is told: every failure is a ``ManifestError`` (a ``ReportgenError``) whose one
line names the file and the reason, the same whoever reads it (``reportgen
verify``, ``run --from-manifest``, the notebook view, the replay of a cached report).
Callers that need a part of the manifest ask for it with ``Manifest.require``.

A layer's channels are written compactly (their page is the layer's ``channel_page``
pattern; ``examples_image`` and ``feature_vis`` only where there is one):
``layer_channels`` gives each channel in full, the one place that knows how.

What a report folder holds beside its manifest (``present_files``,
``unlisted_files``) is here too: the writer (refusing to replace a folder with
foreign files) and ``reportgen verify`` both use it.

Standard library only: no torch, no Jinja2.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reportgen.errors import ReportgenError
from reportgen.report.paths import MANIFEST

__all__ = [
    "EMBEDDED_URI_PREFIX",
    "GENERATOR_NAME",
    "MANIFEST",
    "MANIFEST_FORMAT",
    "Manifest",
    "ManifestError",
    "ManifestUnreadable",
    "channel_page",
    "layer_channels",
    "listed_paths",
    "parse_manifest",
    "present_files",
    "read_manifest",
    "read_regular",
    "unlisted_files",
]

# /2: channels carry no page (the layer's channel_page pattern gives it), examples_image and
# feature_vis only where there is one, float32 numbers as their shortest decimal.
MANIFEST_FORMAT = "reportgen-manifest/2"
GENERATOR_NAME = "reportgen"
# A --single-file report embeds its manifest as the "Save manifest.json" link:
# <a href="data:application/json;base64,..." download="manifest.json">
EMBEDDED_URI_PREFIX = "data:application/json;base64,"
_EMBEDDED = re.compile(
    rb'href="'
    + re.escape(EMBEDDED_URI_PREFIX.encode("ascii"))
    + rb'([A-Za-z0-9+/=]+)" download="'
    + re.escape(MANIFEST.encode("ascii"))
    + rb'"'
)
SINGLE_FILE_SUFFIXES = (".html", ".htm")


class ManifestError(ReportgenError):
    """A manifest that cannot be used; the message is ``'<file>' <reason>``."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path!r} {reason}")


class ManifestUnreadable(ManifestError):
    """No manifest could be read where one was looked for (missing, unreadable)."""

    def __init__(self, path: str | os.PathLike[str], reason: str, detail: str) -> None:
        super().__init__(path, reason)
        self.detail = detail  # the operating system's words, e.g. "No such file or directory"


@dataclass(frozen=True)
class Manifest:
    """A manifest as read: its data, where it was, the sha256 of its bytes."""

    path: Path  # the file read: a manifest.json, or the single-file report
    data: dict[str, Any]
    sha256: str  # of the manifest's JSON bytes (embedded ones for a single-file report)
    single_file: bool = False

    @property
    def folder(self) -> Path | None:
        """The report folder, None for a single-file report."""
        return None if self.single_file else self.path.parent

    def require(self, key: str, kind: type, purpose: str) -> Any:
        """``data[key]``, which must be a ``kind`` (dict or list); a ManifestError says
        what is missing and what for, e.g. "has no 'files' list to check against"."""
        value = self.data.get(key)
        if not isinstance(value, kind):
            noun = "table" if kind is dict else "list" if kind is list else kind.__name__
            raise ManifestError(self.path, f"has no {key!r} {noun} {purpose}")
        return value


def read_manifest(path: str | os.PathLike[str]) -> Manifest:
    """The manifest of a report: ``path`` is a report folder, a manifest.json (any JSON
    file), or a ``--single-file`` report (``.html``/``.htm``).

    Raises ``ManifestUnreadable`` when there is no file to read, ``ManifestError``
    when it is not a manifest that reportgen wrote (not JSON, not an object, no
    ``generator`` named reportgen, no embedded manifest in an HTML file).
    """
    given = Path(path)
    in_folder = given.is_dir()
    location = given / MANIFEST if in_folder else given
    try:
        raw = read_regular(location)
    except OSError as exc:
        detail = exc.strerror or str(exc)
        if in_folder:
            reason = f"has no readable {MANIFEST} ({detail}); is it a reportgen report?"
            raise ManifestUnreadable(given, reason, detail) from exc
        raise ManifestUnreadable(location, f"cannot be read ({detail})", detail) from exc
    single_file = location.suffix.lower() in SINGLE_FILE_SUFFIXES
    if single_file:
        raw = _embedded_bytes(raw, location)
    return Manifest(
        location, parse_manifest(raw, location), hashlib.sha256(raw).hexdigest(), single_file
    )


# The most a manifest may weigh (a single-file report holds its pictures too) and nest:
# reportgen writes about 11 levels (models, layers, channels, stats, argmax).
MAX_MANIFEST_BYTES = 1024 * 1024 * 1024
MAX_NESTING = 32


def read_regular(location: Path, limit: int = MAX_MANIFEST_BYTES) -> bytes:
    """The bytes of ``location``, a regular file of at most ``limit`` bytes; OSError
    otherwise (a FIFO is opened without blocking and refused, like a device)."""
    from reportgen.inputs.safe_read import FileTooLarge, NotRegularFile, read_regular_file

    try:
        return read_regular_file(location, limit)
    except NotRegularFile as exc:
        raise OSError(f"it {exc}") from exc
    except FileTooLarge as exc:
        raise OSError(f"it is larger than {limit:,} bytes") from exc


def nesting_depth(value: Any) -> int:
    """How deep lists and tables (dicts) nest in ``value`` (a scalar is 0), without
    recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth + 1)
        stack.extend((child, depth + 1) for child in children)
    return deepest


def parse_manifest(raw: bytes, where: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest in ``raw`` (JSON bytes read from ``where``), checked: a JSON object
    nested at most ``MAX_NESTING`` deep, written by reportgen."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ManifestError(where, f"is not valid JSON (not UTF-8 text: byte {exc.start})") from exc
    except RecursionError as exc:
        raise ManifestError(where, f"nests lists or objects more than {MAX_NESTING} deep") from exc
    except ValueError as exc:
        raise ManifestError(where, f"is not valid JSON ({exc})") from exc
    if nesting_depth(data) > MAX_NESTING:
        raise ManifestError(where, f"nests lists or objects more than {MAX_NESTING} deep")
    if not isinstance(data, dict):
        raise ManifestError(where, "was not written by reportgen (not a JSON object)")
    generator = data.get("generator")
    if not isinstance(generator, dict) or generator.get("name") != GENERATOR_NAME:
        raise ManifestError(where, "was not written by reportgen")
    return data


def _embedded_bytes(html: bytes, where: Path) -> bytes:
    """The manifest's JSON bytes inside a single-file report."""
    found = _EMBEDDED.search(html)
    if not found:
        raise ManifestError(
            where, f"is not a reportgen single-file report (no embedded {MANIFEST})"
        )
    try:
        return base64.b64decode(found.group(1), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ManifestError(
            where, f"has an embedded {MANIFEST} that is not base64 ({exc})"
        ) from exc


# --- a layer's channels ---------------------------------------------------------------


def channel_page(layer: dict[str, Any], index: int) -> str:
    """The report path of channel ``index``'s page: the layer's ``channel_page`` pattern
    (``.../c{channel:04d}.html``) filled in."""
    pattern = layer.get("channel_page")
    if not isinstance(pattern, str):
        raise KeyError("channel_page")
    return pattern.replace("{channel:04d}", f"{int(index):04d}")


def layer_channels(layer: dict[str, Any]) -> list[dict[str, Any]]:
    """The layer's channel entries in full: each with its ``page`` (from the layer's
    ``channel_page``), ``examples_image`` and ``feature_vis`` (None where absent); the
    manifest's own entries are left as they are. A ``reportgen-manifest/1`` channel
    names its own page."""
    return [
        {
            "examples_image": None,
            "feature_vis": None,
            **channel,
            "page": channel.get("page") or channel_page(layer, channel["index"]),
        }
        for channel in layer.get("channels", [])
    ]


# --- what a report folder holds beside its manifest ---------------------------------


def listed_paths(manifest: dict[str, Any]) -> set[str]:
    """The paths the manifest lists in ``files`` (entries without a path are skipped)."""
    files = manifest.get("files")
    if not isinstance(files, list):
        return set()
    return {
        entry["path"]
        for entry in files
        if isinstance(entry, dict) and isinstance(entry.get("path"), str)
    }


def present_files(report: Path) -> tuple[set[str], list[str]]:
    """Report-relative paths of the regular files in ``report``, and its symlinks.

    Symbolic links are never followed: a report that reportgen wrote has none.
    """
    files: set[str] = set()
    links: list[str] = []
    for root, dirs, names in os.walk(report, followlinks=False):
        rel_root = os.path.relpath(root, report)
        prefix = "" if rel_root == "." else rel_root.replace(os.sep, "/") + "/"
        for name in list(dirs):
            if os.path.islink(os.path.join(root, name)):
                links.append(prefix + name)
        for name in names:
            full = os.path.join(root, name)
            if os.path.islink(full):
                links.append(prefix + name)
            else:
                files.add(prefix + name)
    return files, sorted(links)


def unlisted_files(report: Path, manifest: dict[str, Any]) -> list[str]:
    """Files in ``report`` that its manifest does not list (and is not the manifest)."""
    files, links = present_files(report)
    return sorted((files - listed_paths(manifest) - {MANIFEST}) | set(links))
