"""safetensors checkpoints: an 8-byte header length, a JSON header, raw tensor bytes.

Read with the ``safetensors`` package, which parses the header and copies bytes into
tensors: nothing is unpickled, nothing in the file can run. A file is taken for
safetensors by its content (the header's shape), never by its extension.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import TYPE_CHECKING

from reportgen.errors import ReportgenError

if TYPE_CHECKING:
    import torch

# safetensors itself refuses headers above 100 MB; a larger length is not a header.
MAX_HEADER_BYTES = 100_000_000
INSTALL_HINT = "pip install 'reportgen[timm]' (or pip install safetensors)"


def looks_like_safetensors(head: bytes) -> bool:
    """The first bytes of a file start a safetensors file: a little-endian header
    length, then the JSON header's opening brace."""
    if len(head) < 9:
        return False
    (length,) = struct.unpack("<Q", head[:8])
    return 2 <= length <= MAX_HEADER_BYTES and head[8:9] == b"{"


def named_safetensors(path: Path) -> bool:
    return path.suffix.lower() == ".safetensors"


def _check_layout(path: Path) -> None:
    """Refuse, in reportgen's words, a file whose header or tensors do not fit in it
    (a truncated download is the usual case)."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        if 8 + length > size:
            raise ReportgenError(
                f"weights file {path} is a truncated safetensors file: its header says "
                f"{length:,} bytes, the file has {size - 8:,} after the length"
            )
        try:
            header = json.loads(handle.read(length))
        except (ValueError, UnicodeDecodeError) as exc:
            raise ReportgenError(
                f"weights file {path} is a damaged safetensors file: its header is not JSON"
            ) from exc
    if not isinstance(header, dict):
        raise ReportgenError(f"weights file {path} is a damaged safetensors file: odd header")
    ends = [
        entry["data_offsets"][1]
        for key, entry in header.items()
        if key != "__metadata__" and isinstance(entry, dict) and "data_offsets" in entry
    ]
    needed = 8 + length + max(ends, default=0)
    if needed > size:
        raise ReportgenError(
            f"weights file {path} is a truncated safetensors file: its tensors need "
            f"{needed:,} bytes, the file has {size:,}"
        )


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a safetensors file, on the CPU; one ReportgenError line for a
    damaged file or a missing ``safetensors`` package."""
    try:
        from safetensors.torch import load_file
    except ImportError as exc:
        raise ReportgenError(
            f"weights file {path} is a safetensors file, and reading it needs the "
            f"safetensors package: {INSTALL_HINT}"
        ) from exc
    _check_layout(path)
    try:
        state = load_file(str(path), device="cpu")
    except Exception as exc:  # noqa: BLE001 - the library's parse errors, as one line
        text = " ".join(str(exc).split())[:200]
        raise ReportgenError(
            f"weights file {path} is a damaged safetensors file ({type(exc).__name__}: {text})"
        ) from exc
    if not state:
        raise ReportgenError(f"weights file {path} is a safetensors file without tensors")
    return dict(state)
