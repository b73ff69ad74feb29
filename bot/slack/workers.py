"""rollbot's own bounded pool for slow work: backups, rehearsals, executions.

Bolt runs listeners on a small thread pool, and a listener that takes a backup holds its
thread for minutes. Five such plans parked behind one lock left no thread to ack `/rollback
help` within Slack's three seconds. So listeners only ack and hand slow work here: a fixed
number of threads, a queue of fixed size, and an honest "busy, N ahead" when it is full,
rather than silence.
"""

from __future__ import annotations

import queue
import threading
import uuid
from typing import TYPE_CHECKING

import structlog

if TYPE_CHECKING:
    from collections.abc import Callable

log = structlog.get_logger()


class Workers:
    """A fixed pool of threads draining a bounded queue of jobs."""

    def __init__(self, *, threads: int, queue_size: int) -> None:
        self._jobs: queue.Queue[tuple[str, Callable[[], None]] | None] = queue.Queue(queue_size)
        self._size = threads
        self._threads: list[threading.Thread] = []
        self._busy = 0
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start the threads; jobs submitted before wait in the queue."""
        for number in range(self._size):
            thread = threading.Thread(target=self._work, name=f"rollbot-worker-{number}")
            thread.daemon = True
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 5.0) -> None:
        """Let running jobs finish (up to `timeout` each); queued ones are left.

        A job left in the queue was only acked, never started: no run exists for it, or the
        run is still awaiting approval, so nothing is half done.
        """
        for _ in self._threads:
            try:
                self._jobs.put_nowait(None)
            except queue.Full:
                break
        for thread in self._threads:
            thread.join(timeout=timeout)

    def ahead(self) -> int:
        """Jobs running or waiting: what a new job would queue behind."""
        with self._lock:
            return self._busy + self._jobs.qsize()

    def submit(self, label: str, job: Callable[[], None]) -> int | None:
        """Queue `job`; how many jobs are ahead of it, or None when the queue is full."""
        ahead = self.ahead()
        try:
            self._jobs.put_nowait((label, job))
        except queue.Full:
            log.warning("workers.full", job=label, ahead=ahead)
            return None
        return ahead

    def _work(self) -> None:
        while (item := self._jobs.get()) is not None:
            label, job = item
            with self._lock:
                self._busy += 1
            try:
                job()
            except Exception:  # a job's own errors are its own; the worker lives on
                log.exception("workers.job_failed", job=label, reference=uuid.uuid4().hex[:8])
            finally:
                with self._lock:
                    self._busy -= 1
