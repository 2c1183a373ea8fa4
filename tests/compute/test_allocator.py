"""The batch passes' allocator settings (``reportgen.compute.allocator``): after them, a
large block that was freed stays in the process for the next batch instead of going
back to the kernel. Checked in fresh interpreters with glibc's own bookkeeping
(``mallinfo2``: the free bytes malloc holds)."""

from __future__ import annotations

import ctypes.util
import platform
import subprocess
import sys

import pytest

from tests.helpers import REPO

pytestmark = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only"
)

FREED_AFTER = """
import ctypes, sys
sys.path.insert(0, {repo!r})

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd",
        "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL({libc!r})
libc.mallinfo2.restype = MallInfo2
if {settings}:
    from reportgen.compute.allocator import keep_freed_memory
    assert keep_freed_memory() and keep_freed_memory()  # once per process; true each time
block = bytearray(16 * 1024 * 1024)  # a layer output's size: malloc'd, then freed
del block
print(libc.mallinfo2().fordblks)
"""


def _free_bytes_held(settings: bool) -> int:
    code = FREED_AFTER.format(
        repo=str(REPO), libc=ctypes.util.find_library("c") or "libc.so.6", settings=settings
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


def test_a_freed_large_block_is_kept_for_the_next_batch() -> None:
    assert _free_bytes_held(settings=True) >= 16 * 1024 * 1024
    # Without the settings the same block goes back to the kernel (glibc's defaults):
    # the check above is the settings' doing.
    assert _free_bytes_held(settings=False) < 16 * 1024 * 1024
