"""Every input's per-channel statistics of a layer, in one numpy ``.npy`` file per layer
(``models/<model>/layers/<layer>/stats.npy``): float32, shape [inputs, channels, fields],
the inputs in the manifest's order, the fields ``reportgen.statistics.file_fields()``
with the run's contributions (``ModelFacts.stats_fields``).
Rows are written as inputs finish, each at its place in the file (``os.pwrite``): the
run never holds them all. Not through a memory map: a full disk reaches a write through
a map as SIGBUS, which kills the process before it can say anything or clean up; a plain
write fails with ENOSPC, an OSError. The file's whole size is reserved first
(``posix_fallocate``, where the file system has it), so a disk too small fails at once.
The manifest's ``layers[].stats_file`` names it; README shows how to read one column
with numpy.
"""

from __future__ import annotations

import hashlib
import os
from typing import TYPE_CHECKING, Any

import numpy as np

from reportgen.results.run import stats_rows
from reportgen.statistics import ChannelStats, file_fields

if TYPE_CHECKING:
    from reportgen.report.output import StagedReport

DTYPE = "<f4"


def describe(path: str, inputs: int, channels: int, fields: tuple[str, ...]) -> dict[str, Any]:
    """The manifest's ``stats_file`` entry of a layer."""
    return {
        "path": path,
        "shape": [inputs, channels, len(fields)],
        "fields": list(fields),
        "dtype": "float32",
    }


class StatsFile:
    """A layer's statistics file in the staging folder of a report."""

    def __init__(
        self,
        staged: StagedReport,
        relpath: str,
        inputs: int,
        channels: int,
        fields: tuple[str, ...] | None = None,
    ) -> None:
        self.staged, self.relpath = staged, relpath
        self.path = staged.path_of(relpath)
        self.fields = file_fields() if fields is None else fields
        self.shape = (inputs, channels, len(self.fields))
        self._row_bytes = channels * len(self.fields) * np.dtype(DTYPE).itemsize
        self._fd: int | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
            self._offset = self._write_header()
            size = self._offset + inputs * self._row_bytes
            os.ftruncate(self._fd, size)  # rows never written read as zeros
            if hasattr(os, "posix_fallocate") and size > self._offset:
                _reserve(self._fd, self._offset, size - self._offset)
        except OSError as exc:
            self._close_fd()
            raise self._error(exc) from exc

    def _write_header(self) -> int:
        """The .npy header (the bytes ``numpy.lib.format.open_memmap`` writes); its size."""
        import io

        header = io.BytesIO()
        descr = np.lib.format.dtype_to_descr(np.dtype(DTYPE))
        np.lib.format.write_array_header_1_0(
            header, {"descr": descr, "fortran_order": False, "shape": self.shape}
        )
        assert self._fd is not None
        os.pwrite(self._fd, header.getvalue(), 0)
        return len(header.getvalue())

    def write(self, index: int, stats: ChannelStats) -> None:
        rows = np.ascontiguousarray(stats_rows(stats, self.fields), dtype=DTYPE).tobytes()
        assert self._fd is not None and len(rows) == self._row_bytes
        try:
            os.pwrite(self._fd, rows, self._offset + index * self._row_bytes)
        except OSError as exc:
            raise self._error(exc) from exc

    def _error(self, exc: OSError) -> Exception:
        from reportgen.errors import ReportgenError

        return ReportgenError(
            f"cannot write the report's statistics ({self.relpath}): {exc.strerror or exc}"
        )

    def _close_fd(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def close(self) -> None:
        """Close the file and list it (with its sha256) for the manifest."""
        if self._fd is None:
            return
        self._close_fd()
        digest = hashlib.sha256()
        size = 0
        with self.path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
                size += len(chunk)
        self.staged.record(self.relpath, digest.hexdigest(), size)

    def read(self) -> Any:
        """The written file as a read-only memory map."""
        return np.load(self.path, mmap_mode="r")


def _reserve(fd: int, offset: int, length: int) -> None:
    """Reserve the file's blocks (ENOSPC now, not in a later write); a file system
    without the call (EOPNOTSUPP, EINVAL) is left to the writes."""
    import errno

    try:
        os.posix_fallocate(fd, offset, length)
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            raise
