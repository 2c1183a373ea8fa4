"""A full disk is an ``Error:`` line, never SIGBUS (issue 27, class 5): the statistics
files are written with plain writes (space reserved first), so ENOSPC is an OSError;
the staging folder and the lock are removed and the previous report stays byte for
byte. On a small tmpfs where this test may mount one (root), else by failing the writes
themselves."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import error_line, invoke_reproducible, snapshot, write_images

REPO = Path(__file__).resolve().parents[2]
OPTIONS = (
    "-m", "tests.tinynet_factory:build", "--weights", "none", "--input-size", "32",
    "--device", "cpu", "--top-k", "2", "--examples", "2", "--jobs", "1",
)  # fmt: skip


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs, mounted for the test (skipped where this process may not mount)."""
    mount = tmp_path / "fs"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(mount: Path, leave: int) -> None:
    """Fill ``mount`` up to ``leave`` bytes of free space."""
    filler = mount / "filler"
    filler.unlink(missing_ok=True)
    stat = os.statvfs(mount)
    free = stat.f_bavail * stat.f_frsize
    with filler.open("wb") as handle:
        handle.write(bytes(max(free - leave, 0)))


STATS_SCRIPT = """
import os, sys
from pathlib import Path
from reportgen.errors import ReportgenError
from reportgen.report.statsfile import StatsFile
from reportgen.statistics import ChannelStats, statistic_names
import numpy as np

if sys.argv[2] == "no-fallocate":
    del os.posix_fallocate  # a file system without it: the writes meet the full disk

class Staged:
    def path_of(self, relpath):
        return Path(sys.argv[1]) / relpath
    def record(self, *args):
        pass

channels = 64
row = np.ones(channels)
stats = ChannelStats(
    argmax_y=row.astype(np.int64),
    argmax_x=row.astype(np.int64),
    map_size=(4, 4),
    **{name: row for name in statistic_names()},
)
try:
    table = StatsFile(Staged(), "stats.npy", 4000, channels)
    for index in range(4000):
        table.write(index, stats)
    table.close()
except ReportgenError as exc:
    print(f"Error: {exc}", file=sys.stderr)
    sys.exit(1)
"""


@pytest.mark.parametrize("mode", ["fallocate", "no-fallocate"])
def test_statistics_on_a_full_disk_are_an_error_not_sigbus(small_fs: Path, mode: str) -> None:
    """7 MiB of statistics onto 8 KiB of free space: one line, exit 1 (a write through
    a memory map died here by SIGBUS, status -7)."""
    fill(small_fs, 8192)
    done = subprocess.run(
        [sys.executable, "-c", STATS_SCRIPT, str(small_fs), mode],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=False,
    )
    assert done.returncode == 1, (done.returncode, done.stderr)
    assert done.stderr.strip() == (
        "Error: cannot write the report's statistics (stats.npy): No space left on device"
    )


@pytest.mark.slow
def test_a_run_on_a_nearly_full_disk_ends_in_one_line_and_leaves_nothing(
    small_fs: Path, tmp_path: Path
) -> None:
    write_images(tmp_path / "images", 3, (36, 40), grow=4, seed=1)
    report = small_fs / "report"
    command = [sys.executable, "-m", "reportgen", "run", str(tmp_path / "images"), *OPTIONS]
    env = {**os.environ, "PYTHONPATH": str(REPO), "REPORTGEN_CACHE_DIR": "off"}
    first = subprocess.run([*command, "-o", str(report)], env=env, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    before = snapshot(report)
    for leave in (0, 4096, 16384, 65536, 262144):
        fill(small_fs, leave)
        done = subprocess.run(
            [*command, "--seed", "3", "-o", str(report)], env=env, capture_output=True, text=True
        )
        errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
        assert done.returncode == 1, (leave, done.returncode, done.stderr)
        assert errors and "No space left on device" in errors[-1], done.stderr
        assert "Traceback" not in done.stderr
        assert sorted(p.name for p in small_fs.iterdir()) == ["filler", "report"], leave
        assert snapshot(report) == before


def test_a_failing_statistics_write_is_one_line_and_the_report_stays(
    small_images: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a mount: the statistics' writes fail with ENOSPC (the write layer)."""
    monkeypatch.chdir(tmp_path)
    result = invoke_reproducible("-q", "run", str(small_images), *OPTIONS, "-o", "report")
    assert result.exit_code == 0, result.stderr
    before = snapshot(tmp_path / "report")
    import reportgen.report.statsfile as statsfile

    real_pwrite = os.pwrite

    def full(fd: int, data: bytes, offset: int) -> int:
        if offset > 0:  # the rows, after the header
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(statsfile.os, "pwrite", full)
    result = invoke_reproducible("run", str(small_images), *OPTIONS, "--seed", "4", "-o", "report")
    error_line(result, 1, "cannot write the report's statistics", "No space left on device")
    assert snapshot(tmp_path / "report") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images", "report"]
