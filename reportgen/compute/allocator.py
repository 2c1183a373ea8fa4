"""The C allocator's settings for the batch passes.

A pass allocates the same large buffers batch after batch: layer outputs, their float32
copies and, when contributions are on, the autograd graph and a gradient per layer.
glibc's malloc serves blocks above its mmap threshold (128 KB at first, raised as such
blocks are freed, to 32 MB at most) with fresh pages from the kernel, and hands the
top of the heap back once more than its trim threshold is free there, so each batch
pays for page faults and for zeroing memory it just gave away. Serving blocks up to
32 MB from the heap and keeping what is freed there makes the next batch reuse them.
Measured on ResNet-18 at batch 8 (README, "Channel contributions' cost"): the pass with
contributions went from 46-53 to 43 ms an image, the plain forward pass from 23-26 to
21-22 ms. The peak memory is the same: a batch's buffers are alive at once anyway; what
changes is that the process keeps its peak after a batch instead of returning it.

Only glibc has ``mallopt``; elsewhere (macOS, musl) nothing is changed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

M_TRIM_THRESHOLD = -1  # glibc's malloc.h
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's largest (DEFAULT_MMAP_THRESHOLD_MAX, 64 bit)
TRIM_THRESHOLD = 1024 * 1024 * 1024


@functools.cache
def keep_freed_memory() -> bool:
    """Large blocks from the heap, and freed memory kept for the next batch, once per
    process. True where the C library took both settings."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
