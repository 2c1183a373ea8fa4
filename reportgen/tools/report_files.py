"""A report folder's files as a reader that does not trust them: only the files the
manifest lists, below the folder (no ``..``, no absolute paths, no symbolic links),
regular files whose sha256 and size match the listing, pictures decoded within the
input pixel limit. The notebook view (``tools.notebook``) reads a report through this.
"""

from __future__ import annotations

import base64
import hashlib
import mimetypes
import os
import re
from pathlib import Path
from typing import Any

from reportgen.report.manifest_file import read_regular


class ReportFiles:
    """The files of the report in ``root`` that its ``manifest`` lists."""

    def __init__(self, root: Path, manifest: dict[str, Any]) -> None:
        self.root = root
        self._listed = listed_files(manifest)
        self._verified: dict[str, bool] = {}

    def file_bytes(self, relpath: str | None) -> bytes | None:
        """The bytes of a report file the manifest lists (under the report folder, a
        regular file, its sha256 and size as listed); None for anything else."""
        path = self._listed_path(relpath)
        if path is None or relpath is None:
            return None
        sha256, size = self._listed[relpath]
        try:
            data = read_regular(path, size)
        except OSError:
            return None
        if len(data) != size or hashlib.sha256(data).hexdigest() != sha256:
            return None
        return data

    def verified_path(self, relpath: str | None) -> Path | None:
        """The path of a listed report file whose content matches the manifest (checked
        once), for readers that map a file rather than load it; None otherwise."""
        path = self._listed_path(relpath)
        if path is None or relpath is None:
            return None
        if relpath not in self._verified:
            self._verified[relpath] = self.file_bytes(relpath) is not None
        return path if self._verified[relpath] else None

    def _listed_path(self, relpath: str | None) -> Path | None:
        """``root / relpath`` when the manifest lists ``relpath`` and it names a file
        inside the folder with no symbolic link on the way."""
        if not isinstance(relpath, str) or relpath not in self._listed:
            return None
        parts = relpath.split("/")
        if relpath.startswith("/") or "\\" in relpath or any(p in ("", ".", "..") for p in parts):
            return None
        path = self.root
        for part in parts:
            path = path / part
            if path.is_symlink():
                return None
        real_root = os.path.realpath(self.root)
        if not os.path.realpath(path).startswith(real_root + os.sep):
            return None
        return path

    def picture(self, relpath: str | None) -> Any:
        """A listed picture of the report, decoded (PIL image, loaded) within the input
        pixel limit; None when it is not listed, changed, or not a picture."""
        data = self.file_bytes(relpath)
        return None if data is None else decode_picture(data)

    def data_uri(self, relpath: str | None) -> str | None:
        """A picture of the report as a data: URI (None when it is missing, not listed
        in the manifest, or not as listed)."""
        payload = self.file_bytes(relpath)
        if payload is None or relpath is None:
            return None
        kind = mimetypes.guess_type(relpath.rsplit("/", 1)[-1])[0] or "application/octet-stream"
        if not kind.startswith("image/"):
            return None
        return f"data:{kind};base64," + base64.b64encode(payload).decode("ascii")


_FIELD = re.compile(r"\{(input|channel)(?::0([1-9])d)?\}")


def fill_pattern(pattern: str, input_id: str, channel: int) -> str | None:
    """A manifest's path pattern (``.../sheets/{input}.png``, ``c{channel:04d}.png``) with
    its fields filled in; None for a pattern with any other field. Not ``str.format``:
    a pattern is data, and format specs can reach attributes or ask for huge padding."""
    rest = _FIELD.sub("", pattern)
    if "{" in rest or "}" in rest:
        return None

    def value(found: re.Match[str]) -> str:
        if found.group(1) == "input":
            return str(input_id)
        return f"{int(channel):0{int(found.group(2))}d}" if found.group(2) else str(channel)

    return _FIELD.sub(value, pattern)


def listed_files(manifest: dict[str, Any]) -> dict[str, tuple[str, int]]:
    """The manifest's ``files`` entries that name a path, a sha256 and a size."""
    listed: dict[str, tuple[str, int]] = {}
    files = manifest.get("files")
    for entry in files if isinstance(files, list) else []:
        if not isinstance(entry, dict):
            continue
        path, sha256, size = entry.get("path"), entry.get("sha256"), entry.get("bytes")
        if (
            isinstance(path, str)
            and isinstance(sha256, str)
            and isinstance(size, int)
            and not isinstance(size, bool)
            and size >= 0
        ):
            listed[path] = (sha256.lower(), size)
    return listed


def decode_picture(data: bytes) -> Any:
    """``data`` as a loaded PIL image, or None: not a picture, or larger than the pixel
    limit of an input (checked before decoding)."""
    import io
    import warnings

    from PIL import Image

    from reportgen.inputs.files import MAX_PIXELS

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as opened:
                if opened.width * opened.height > MAX_PIXELS:
                    return None
                opened.load()
                return opened.copy()
        except Exception:  # noqa: BLE001 - any decoder failure: not a usable picture
            return None
