"""Background analysis jobs: a small thread pool whose progress lives in the store.

A job is an analysis row the API created as ``queued``; the pool moves it to ``running``,
runs the analysis and stores its tables (``completed``) or the error (``failed``) through
the store's job flow (:func:`cytosafe.store.set_status`,
:func:`cytosafe.store.complete_analysis`). Its progress (a fraction and a message) is
written to the analysis row too (:func:`cytosafe.store.report_progress`), so every server
process answers ``GET /api/analyses/{id}`` alike, and a heartbeat says the job is alive.

A server that stops or crashes mid-job leaves its analyses ``running`` with a heartbeat
that ages; every runner looks for such jobs when it starts and once a minute after, and
fails them with the reason (:func:`cytosafe.store.recover_interrupted`), audited.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from cytosafe.errors import CytoSafeError
from cytosafe.store import Store, beat, recover_interrupted, report_progress, set_status

__all__ = ["JobRunner"]

log = logging.getLogger("cytosafe.web.jobs")


class JobRunner:
    """Runs analysis jobs on ``workers`` threads.

    Parameters
    ----------
    store:
        Where the analyses, their progress and heartbeats are.
    workers:
        Threads running jobs at once.
    heartbeat_seconds:
        How often the runner says its jobs are alive. A job not heard of for
        ``4 x heartbeat_seconds`` is taken for interrupted (0: no heartbeat thread and
        no recovery, for tests that drive the runner by hand).
    """

    def __init__(self, store: Store, workers: int = 2, *, heartbeat_seconds: float = 15.0) -> None:
        self.store = store
        self.heartbeat_seconds = heartbeat_seconds
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cytosafe-job")
        self._lock = threading.Lock()
        self._futures: dict[int, Future] = {}
        self._last: dict[int, tuple[float, str]] = {}
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    @property
    def silent_for(self) -> dt.timedelta:
        """How long a job may go unheard of before it is taken for interrupted."""
        return dt.timedelta(seconds=4 * self.heartbeat_seconds)

    def start(self) -> list[int]:
        """Fail the jobs an earlier server left behind and start the heartbeat; returns
        the ids of the analyses found interrupted."""
        found: list[int] = []
        if self.heartbeat_seconds > 0:
            found = self.recover()
            self._beat = threading.Thread(target=self._beating, name="cytosafe-beat", daemon=True)
            self._beat.start()
        return found

    def recover(self) -> list[int]:
        """Fail the queued or running analyses no server has been heard of for long."""
        try:
            found = recover_interrupted(self.store, silent_for=self.silent_for)
        except Exception:  # pragma: no cover - the store is gone; try again next time
            log.exception("cannot look for interrupted analyses")
            return []
        if found:
            log.warning("analyses %s were interrupted and are marked failed", found)
        return found

    def _beating(self) -> None:
        next_recovery = time.monotonic() + 60
        while not self._stop.wait(self.heartbeat_seconds):
            with self._lock:
                running = [i for i, f in self._futures.items() if not f.done()]
            try:
                beat(self.store, running)
            except Exception:  # pragma: no cover - the store is gone; try again next time
                log.exception("cannot record the heartbeat of analyses %s", running)
            if time.monotonic() >= next_recovery:
                self.recover()
                next_recovery = time.monotonic() + 60

    def report(self, analysis_id: int, fraction: float, message: str) -> None:
        """Record a job's progress (at most once a second unless the message changes)."""
        now = time.monotonic()
        with self._lock:
            last = self._last.get(analysis_id)
            if last is not None and last[1] == message and now - last[0] < 1.0:
                return
            self._last[analysis_id] = (now, message)
        report_progress(self.store, analysis_id, min(max(float(fraction), 0.0), 1.0), message)

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
            except Exception as exc:  # the job's failure is the analysis' status
                message = str(exc) if isinstance(exc, CytoSafeError) else repr(exc)
                if not isinstance(exc, CytoSafeError):
                    log.exception("analysis %s failed", analysis_id)
                try:
                    set_status(self.store, analysis_id, "failed", user=username, message=message)
                except Exception:  # pragma: no cover - the store itself is gone
                    log.exception("cannot record the failure of analysis %s", analysis_id)
            finally:
                with self._lock:
                    self._last.pop(analysis_id, None)

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
        self._stop.set()
        self._pool.shutdown(wait=True)
        if self._beat is not None:
            self._beat.join(timeout=5)
