"""The encoder pool: picture encoding and file writing on worker threads while the
network runs (Pillow and zlib release the GIL), with a bounded backlog so memory stays
flat."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class ImageEncoder:
    """Runs tasks on worker threads; ``submit`` waits when too many are queued."""

    def __init__(self, jobs: int) -> None:
        self.pool = ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="encode")
        self.pending: deque[Future[Any]] = deque()
        self.limit = 64 * max(1, jobs)

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """A task whose result nobody waits for (its errors surface at ``drain``)."""
        self.pending.append(self.pool.submit(fn, *args))
        while len(self.pending) > self.limit:
            self.pending.popleft().result()

    def future(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        """A task whose result the caller takes (and so bounds) itself."""
        return self.pool.submit(fn, *args)

    def drain(self) -> None:
        while self.pending:
            self.pending.popleft().result()

    def close(self) -> None:
        try:
            self.drain()
        finally:
            # Waits for running tasks, and so for the callbacks that store their results.
            self.pool.shutdown(wait=True, cancel_futures=True)
