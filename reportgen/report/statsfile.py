"""Every input's per-channel statistics of a layer, in one numpy ``.npy`` file per layer
(``models/<model>/layers/<layer>/stats.npy``): float32, shape [inputs, channels, fields],
the inputs in the manifest's order, the fields ``reportgen.statistics.file_fields()``.
Rows are written as inputs finish, through a memory map: the run never holds them all.
The manifest's ``layers[].stats_file`` names it; README shows how to read one column
with numpy.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import numpy as np

from reportgen.results.run import stats_rows
from reportgen.statistics import ChannelStats, file_fields

if TYPE_CHECKING:
    from reportgen.report.output import StagedReport


DTYPE = "<f4"


def describe(path: str, inputs: int, channels: int) -> dict[str, Any]:
    """The manifest's ``stats_file`` entry of a layer."""
    fields = file_fields()
    return {
        "path": path,
        "shape": [inputs, channels, len(fields)],
        "fields": list(fields),
        "dtype": "float32",
    }


class StatsFile:
    """A layer's statistics file in the staging folder of a report."""

    def __init__(self, staged: StagedReport, relpath: str, inputs: int, channels: int) -> None:
        self.staged, self.relpath = staged, relpath
        self.path = staged.path_of(relpath)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.shape = (inputs, channels, len(file_fields()))
        self.array: Any = np.lib.format.open_memmap(
            self.path, mode="w+", dtype=DTYPE, shape=self.shape
        )

    def write(self, index: int, stats: ChannelStats) -> None:
        self.array[index] = stats_rows(stats)

    def close(self) -> None:
        """Flush the file and list it (with its sha256) for the manifest."""
        if self.array is None:
            return
        self.array.flush()
        del self.array
        self.array = None
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
