"""Encoding pictures on worker threads while the network runs, and writing them into
the report (bounded backlog, so memory stays flat)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any


class ImageEncoder:
    """Runs image encoding and file writing on worker threads, with bounded backlog."""

    def __init__(self, jobs: int, staged: Any = None) -> None:
        self.staged = staged
        self.pool = ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="encode")
        self.pending: deque[Future[Any]] = deque()
        self.limit = 64 * max(1, jobs)

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        self.pending.append(self.pool.submit(fn, *args))
        while len(self.pending) > self.limit:
            self.pending.popleft().result()

    def write(self, path: str, encode: Callable[..., bytes], *args: Any) -> None:
        """Encode on a worker thread, then write the bytes to ``path`` in the report."""

        if getattr(self.staged, "discards", False):
            return  # analysis only: no pictures

        def task() -> None:
            self.staged.write(path, encode(*args))

        self.submit(task)

    def drain(self) -> None:
        while self.pending:
            self.pending.popleft().result()

    def close(self) -> None:
        try:
            self.drain()
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)


def write_cached(encoder: ImageEncoder, staged: Any, path: str, data: bytes) -> None:
    encoder.submit(staged.write, path, data)


def encode_and_write(
    encoder: ImageEncoder,
    staged: Any,
    builder: Any,
    path: str,
    name: str,
    encode: Callable[..., bytes],
    *args: Any,
) -> None:
    """Encode on a worker thread, write to the report and, with a builder, keep the bytes
    for the cache."""
    if builder is None:
        encoder.write(path, encode, *args)
        return
    builder.expect()

    def task() -> None:
        data = encode(*args)
        staged.write(path, data)
        builder.add(name, data)

    encoder.submit(task)
