"""Background analysis jobs: a small thread pool and the progress of each job.

A job is an analysis row the API created as ``queued``; the pool moves it to ``running``,
runs the analysis and stores its tables (``completed``) or the error (``failed``) through
the store's job flow (:func:`cytosafe.store.set_status`,
:func:`cytosafe.store.complete_analysis`), so the status survives the process. Progress
(a fraction and a message) is kept in memory by the process running the job; clients
poll it with ``GET /api/analyses/{id}``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from cytosafe.errors import CytoSafeError
from cytosafe.store import Store, set_status

__all__ = ["JobRunner", "Progress"]

log = logging.getLogger("cytosafe.web.jobs")


@dataclass(frozen=True)
class Progress:
    """How far a job is (0-1) and what it is doing."""

    fraction: float
    message: str


class JobRunner:
    """Runs analysis jobs on ``workers`` threads."""

    def __init__(self, store: Store, workers: int = 2) -> None:
        self.store = store
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cytosafe-job")
        self._lock = threading.Lock()
        self._progress: dict[int, Progress] = {}
        self._futures: dict[int, Future] = {}

    def progress(self, analysis_id: int) -> Progress | None:
        with self._lock:
            return self._progress.get(analysis_id)

    def report(self, analysis_id: int, fraction: float, message: str) -> None:
        with self._lock:
            self._progress[analysis_id] = Progress(round(float(fraction), 3), message)

    def submit(
        self,
        analysis_id: int,
        username: str,
        work: Callable[[Callable[[float, str], None]], None],
    ) -> None:
        """Run ``work(report)`` for a queued analysis; ``work`` completes the analysis."""
        self.report(analysis_id, 0.0, "queued")

        def run() -> None:
            def step(fraction: float, message: str) -> None:
                self.report(analysis_id, fraction, message)

            try:
                set_status(self.store, analysis_id, "running", user=username)
                step(0.05, "running")
                work(step)
                step(1.0, "completed")
            except Exception as exc:  # the job's failure is the analysis' status
                message = str(exc) if isinstance(exc, CytoSafeError) else repr(exc)
                if not isinstance(exc, CytoSafeError):
                    log.exception("analysis %s failed", analysis_id)
                self.report(analysis_id, 1.0, f"failed: {message}")
                try:
                    set_status(self.store, analysis_id, "failed", user=username, message=message)
                except Exception:  # pragma: no cover - the store itself is gone
                    log.exception("cannot record the failure of analysis %s", analysis_id)

        with self._lock:
            self._futures[analysis_id] = self._pool.submit(run)

    def wait(self, analysis_id: int, timeout: float | None = None) -> None:
        """Block until the job of ``analysis_id`` has finished (for scripts and tests)."""
        with self._lock:
            future = self._futures.get(analysis_id)
        if future is not None:
            future.result(timeout)

    def shutdown(self) -> None:
        """Finish the running jobs and stop the threads."""
        self._pool.shutdown(wait=True)
