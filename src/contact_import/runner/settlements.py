"""Settlements: the last write of a run (release the job, or finish it), kept until it lands.

When the database is down at that moment, the write waits here and the runner's loop tries
it again when the database is back, so the job resumes within seconds of the database
returning instead of after its lease. The lease fence still decides: a settlement whose
lease was lost meanwhile (someone else claimed the job) is dropped, never forced.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from contact_import.domain.job import JobStatus
from contact_import.errors import DatabaseUnavailable, LeaseLost
from contact_import.store.db_errors import as_store_error, map_db_errors
from contact_import.store.jobs import JobStore, Lease

__all__ = ["PendingSettlements", "Settlement"]

log = logging.getLogger("contact_import.importer")

# The release's ``run_after`` comes from the database's clock, read when its transaction
# starts, a moment after ours: wake a little later than ``due``, or the claim comes too soon.
_DUE_MARGIN = 0.1


@dataclass(frozen=True)
class Settlement:
    """Release the job (``status`` None), runnable ``delay`` seconds after ``decided_at``, or
    finish it with ``status``. The delay runs from the decision, not from when the write
    lands: a job released after a long outage is runnable at once."""

    lease: Lease
    status: JobStatus | None = None
    delay: float = 0.0
    refund: bool = False
    error: str | None = None
    decided_at: float = 0.0

    def apply(self, jobs: JobStore, now: float) -> None:
        """Write it; raises LeaseLost, DatabaseUnavailable, or another StoreError."""
        with map_db_errors(as_store_error):
            if self.status is None:
                delay = max(0.0, self.decided_at + self.delay - now)
                jobs.release(self.lease, delay=delay, refund=self.refund, error=self.error)
            else:
                jobs.finish(self.lease, self.status, self.error)

    @property
    def what(self) -> str:
        return "release" if self.status is None else f"finish ({self.status.value})"


class PendingSettlements:
    """Settlements that met an outage, oldest first; shared by the threads of one process."""

    def __init__(self, jobs: JobStore, clock: Callable[[], float] = time.monotonic) -> None:
        self._jobs = jobs
        self.clock = clock
        self._queue: deque[Settlement] = deque()
        self._lock = threading.Lock()
        self._due: list[float] = []  # heap: when jobs released here become runnable

    def apply(self, settlement: Settlement) -> None:
        """Write it now (see ``Settlement.apply``), remembering when a released job is due."""
        now = self.clock()
        settlement.apply(self._jobs, now)
        due = settlement.decided_at + settlement.delay
        if settlement.status is None and due > now:
            with self._lock:
                heapq.heappush(self._due, due + _DUE_MARGIN)

    def next_due(self) -> float | None:
        """When the soonest job released here becomes runnable (clock time), if still ahead.

        A worker sleeps at most until then, instead of until its next poll: the NOTIFY of a
        release arrives at once, before the job is runnable.
        """
        now = self.clock()
        with self._lock:
            while self._due and self._due[0] <= now:
                heapq.heappop(self._due)
            return self._due[0] if self._due else None

    def __len__(self) -> int:
        with self._lock:
            return len(self._queue)

    def add(self, settlement: Settlement) -> None:
        with self._lock:
            self._queue.append(settlement)
        log.warning(
            "database unavailable: the %s waits until it is back",
            settlement.what,
            extra=_job(settlement),
        )

    def retry(self) -> int:
        """Apply them in order; how many landed. Raises DatabaseUnavailable (the rest wait)."""
        landed = 0
        while (settlement := self._pop()) is not None:
            try:
                self.apply(settlement)
            except DatabaseUnavailable:
                self._push_back(settlement)
                raise
            except LeaseLost:
                log.warning(
                    "dropped a waiting %s: the lease was lost meanwhile",
                    settlement.what,
                    extra=_job(settlement),
                )
                continue
            except Exception:
                # Not an outage: trying again will not help; the lease expiring settles it.
                log.exception(
                    "could not apply a waiting %s; the job's lease will expire",
                    settlement.what,
                    extra=_job(settlement),
                )
                continue
            landed += 1
            log.info("settled after the outage: %s", settlement.what, extra=_job(settlement))
        return landed

    def _pop(self) -> Settlement | None:
        with self._lock:
            return self._queue.popleft() if self._queue else None

    def _push_back(self, settlement: Settlement) -> None:
        with self._lock:
            self._queue.appendleft(settlement)


def _job(settlement: Settlement) -> dict[str, object]:
    return {"job_id": str(settlement.lease.job_id)}
