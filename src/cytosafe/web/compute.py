"""CPU-heavy request work in worker processes, so that it never holds the server's GIL.

Grading an uploaded observation table takes tens of milliseconds of pandas work. Run on
the server's threads it holds the GIL, and every read waiting behind it (an analysis, a
table, a list of studies) pays for it: under load, reads took seconds. The work is
sent instead to a small pool of worker processes started with ``spawn`` (no fork of a
threaded server) and run at a lower scheduling priority, so the operating system
serves the interactive reads first.

``workers=0`` runs the work in the calling thread (for tests and one-user scripts).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from typing import Any, TypeVar

__all__ = ["ComputePool"]

log = logging.getLogger("cytosafe.web.compute")

T = TypeVar("T")

#: The nice increment of the worker processes (Unix): reads before batch work.
NICENESS = 5


def _start_worker() -> None:
    if hasattr(os, "nice"):
        try:
            os.nice(NICENESS)
        except OSError:  # pragma: no cover - not permitted: run at normal priority
            pass
    # Import the grading stack once per process, not on the first request.
    import cytosafe.clinical  # noqa: F401


def _ready() -> bool:
    return True


class ComputePool:
    """A lazily started pool of ``workers`` processes for CPU-heavy request work."""

    def __init__(self, workers: int = 1) -> None:
        if workers < 0:
            raise ValueError("workers must be 0 or more")
        self.workers = workers
        self._pool: Executor | None = None
        self._lock = threading.Lock()

    def _executor(self) -> Executor:
        with self._lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    max_workers=self.workers,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_start_worker,
                )
            return self._pool

    def submit(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Future[T]:
        """Start ``fn(*args, **kwargs)``; ``fn`` and its arguments must pickle."""
        if self.workers == 0:
            future: Future[T] = Future()
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as exc:  # handed to the caller through the future
                future.set_exception(exc)
            return future
        return self._executor().submit(fn, *args, **kwargs)

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn`` in a worker and wait for it (from a thread; releases the GIL)."""
        return self.submit(fn, *args, **kwargs).result()

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn`` in a worker without blocking the event loop or a thread."""
        if self.workers == 0:
            return await asyncio.to_thread(fn, *args, **kwargs)
        return await asyncio.wrap_future(self.submit(fn, *args, **kwargs))

    def warm_up(self) -> None:
        """Start the workers now (a server does this at start-up, not on a request)."""
        if self.workers:
            for future in [self.submit(_ready) for _ in range(self.workers)]:
                future.result()

    def shutdown(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
