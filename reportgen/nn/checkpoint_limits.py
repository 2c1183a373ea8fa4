"""Bounds on reading a checkpoint, before torch does. No torch here.

``torch.load(weights_only=True)`` runs no code from a file, but it is not bounded in
size: a small file in torch's zip format may hold a compressed ``data.pkl`` that
inflates to gigabytes of pickle opcodes (torch's restricted unpickler is written in
Python, about a second per 2 MiB of them), or a tensor record that inflates to more
memory than the machine has. ``torch.save`` never compresses: each record is stored as
it is, so a compressed record is already unusual, and one that inflates far beyond its
stored size is a bomb. Sizes are read from the zip's directory; torch's reader
allocates by those same sizes, so a record cannot inflate past what is declared there.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from reportgen.errors import ReportgenError

# The pickle of a state dict names each tensor once (about 150 bytes a tensor): a model
# of 50,000 tensors fits in 8 MiB.
MAX_PICKLE_BYTES = 8 * 1024 * 1024
# A compressed record may inflate to this many times its stored size (plus 1 MiB).
MAX_EXPANSION = 20
_SLACK = 1024 * 1024
# All records together, inflated.
MAX_CHECKPOINT_BYTES = 16 * 1024**3


def check_zip_bounds(path: Path) -> None:
    """ReportgenError naming ``path`` when its zip records break the bounds above; a
    file that is not a zip archive is left to torch's reader (and its error)."""
    try:
        with zipfile.ZipFile(path) as archive:
            records = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return
    total = 0
    for record in records:
        name = record.filename
        total += record.file_size
        if name.rpartition("/")[2] == "data.pkl" and record.file_size > MAX_PICKLE_BYTES:
            raise _refused(
                path,
                f"its pickle ({name}) is {record.file_size:,} bytes, over the "
                f"{MAX_PICKLE_BYTES:,} a state dict needs",
            )
        if (
            record.compress_type != zipfile.ZIP_STORED
            and record.file_size > record.compress_size * MAX_EXPANSION + _SLACK
        ):
            raise _refused(
                path,
                f"its record {name} inflates from {record.compress_size:,} to "
                f"{record.file_size:,} bytes (torch.save stores records uncompressed)",
            )
    if total > MAX_CHECKPOINT_BYTES:
        raise _refused(path, f"its records hold {total:,} bytes, over {MAX_CHECKPOINT_BYTES:,}")


def _refused(path: Path, reason: str) -> ReportgenError:
    return ReportgenError(f"refusing weights file {path}: {reason}; nothing in it was loaded")
