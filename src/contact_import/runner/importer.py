"""Run one claimed job, page by page, until it completes, fails, or must yield.

Pages are pipelined: while page N's transaction runs on the database, page N+1 is fetched,
parsed and normalized on a helper thread (``runner.listing``; on Postgres parsed once page N's
write waits on its longest statement). Only the fetch moves: page N+1 is matched, planned and
written after page N committed, in its own transaction, behind the same lease fence, so a
page fetched ahead of a lost lease, a cancel, a shutdown or a spent budget is simply dropped
(fetching writes nothing). Matching cannot move ahead: it reads the key owners page N writes.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from sqlalchemy import Engine

from contact_import.domain.job import JobStatus, decide_retry
from contact_import.errors import (
    ContactImportError,
    DatabaseUnavailable,
    LeaseLost,
    RateLimited,
    StatementFailed,
)
from contact_import.failures import FailureReason, failure_reason
from contact_import.metrics import Metrics
from contact_import.providers.base import ContactPage
from contact_import.runner.interpreter import tune_for_imports
from contact_import.runner.listing import Listing, PageAhead, SourceFor, mostly_skipped
from contact_import.runner.settlements import PendingSettlements, Settlement
from contact_import.store.db_errors import as_store_error
from contact_import.store.grants import GrantStore
from contact_import.store.jobs import Job, JobStore, Lease, PageCounts
from contact_import.store.page import Listed, PageResult, PageWrite, write_page

__all__ = ["ImportBudget", "Importer", "Outcome", "SourceFor"]

log = logging.getLogger("contact_import.importer")

# A job interrupted by a database outage is runnable again this long after the failure: soon,
# but not in a tight loop if the "outage" is this job's own statement killing its connection.
OUTAGE_RELEASE_DELAY = 1.0


class Outcome(StrEnum):
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    CONTINUING = "continuing"  # yielded at a page boundary: budget spent or shutting down
    RETRYING = "retrying"  # transient error: released with a backoff, resumes from its cursor
    LEASE_LOST = "lease_lost"  # someone else owns the job now
    # The database went away: released with the attempt refunded, now or (the release waits
    # in ``Importer.pending``) when the database is back; resumes from its cursor.
    INTERRUPTED = "interrupted"


@dataclass
class ImportBudget:
    """When to stop starting pages: never start one we do not expect to finish in time.

    ``page_estimate`` remembers the slowest recent page (decaying), so the overrun past the
    deadline is at most one unexpectedly slow page. Shared by the jobs of one tick.
    """

    deadline: float | None = None
    clock: Callable[[], float] = time.monotonic
    page_estimate: float = 0.0
    longest_page: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def seconds(
        cls, seconds: float | None, clock: Callable[[], float] = time.monotonic
    ) -> ImportBudget:
        return cls(None if seconds is None else clock() + seconds, clock)

    def can_start_page(self, pages: int = 1) -> bool:
        """Whether ``pages`` more pages (as slow as the estimate) fit before the deadline."""
        if self.deadline is None:
            return True
        return self.deadline - self.clock() > pages * self.page_estimate

    def record_page(self, seconds: float) -> None:
        with self._lock:
            self.page_estimate = max(seconds, self.page_estimate * 0.8)
            self.longest_page = max(self.longest_page, seconds)


@dataclass
class _Progress:
    """What this run added to the job, for the log lines (the database holds the truth)."""

    pages: int = 0
    created: int = 0
    updated: int = 0
    skipped: int = 0
    failed: int = 0

    def add(self, counts: PageCounts) -> None:
        self.pages += 1
        self.created += counts.created
        self.updated += counts.updated
        self.skipped += counts.skipped
        self.failed += counts.failed

    def totals(self, job: Job) -> dict[str, int]:
        """The job's counts at claim time plus this run's: its counts now."""
        return {
            "pages": job.pages_done + self.pages,
            "contacts_created": job.created_contacts + self.created,
            "contacts_updated": job.updated_contacts + self.updated,
            "contacts_skipped": job.skipped_contacts + self.skipped,
            "contacts_failed": job.failed_contacts + self.failed,
        }


class _Stopping(Exception):
    """The worker is shutting down while the client waits to retry: yield the job now."""


class Importer:
    def __init__(
        self,
        engine: Engine,
        jobs: JobStore,
        sources: SourceFor,
        *,
        grants: GrantStore,
        lease_seconds: float,
        default_region: str | None,
        metrics: Metrics,
        jitter: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        pipeline: bool = True,
    ) -> None:
        """``clock`` and ``sleep`` pace the provider's retry waits (tests pass a fake pair);
        ``pipeline`` False fetches each page only after the one before it is written.
        Sets the process's garbage collector, and with ``pipeline`` its GIL switch interval,
        for imports (``runner.interpreter``)."""
        self._engine = engine
        self._pipeline = pipeline
        tune_for_imports(pipeline=pipeline)
        self._clock, self._sleep = clock, sleep
        self._jobs = jobs
        self._sources = sources
        self._grants = grants
        self._lease_seconds = lease_seconds
        self._region = default_region
        self._jitter = jitter
        self._metrics = metrics
        # Releases and finishes that met an outage; whoever runs the loop retries them.
        self.pending = PendingSettlements(jobs)

    def settle_pending(self) -> int:
        """Retry the settlements that met an outage; raises DatabaseUnavailable if it lasts."""
        return self.pending.retry()

    def run(
        self,
        job: Job,
        budget: ImportBudget,
        stop: threading.Event | None = None,
        *,
        first_page_fits: bool = False,
    ) -> Outcome:
        """Import pages of a claimed job until it ends or must yield; never raises.

        ``first_page_fits``: the caller claimed the job because ``budget`` fitted a page (a
        tick): its first page starts without asking again, so a page estimate raised by
        another job in the meantime does not waste the claim."""
        stop = stop or threading.Event()
        lease = job.lease
        extra = {"job_id": str(job.id), "provider": job.provider, "attempt": job.attempts}
        log.info("job claimed", extra=extra | {"resuming": job.page_cursor is not None})
        progress = _Progress()
        try:
            outcome = self._run_pages(
                job, lease, budget, stop, progress, first_page_fits=first_page_fits
            )
        except _Stopping:
            return self._yield(lease)
        except Exception as exc:
            return self._after_error(job, as_store_error(exc), extra)
        if outcome is Outcome.COMPLETED:
            self._metrics.record_completion(job.started_at)
        log.info("job %s", outcome.value, extra=extra | progress.totals(job))
        return outcome

    def _run_pages(
        self,
        job: Job,
        lease: Lease,
        budget: ImportBudget,
        stop: threading.Event,
        progress: _Progress,
        *,
        first_page_fits: bool,
    ) -> Outcome:
        abandon = threading.Event()  # set when this run ends: a page fetched ahead is dropped
        sleep = self._lease_keeping_sleep(lease, lambda: stop.is_set() or abandon.is_set())
        listing = Listing(self._sources, job, sleep, grants=self._grants, region=self._region)
        cursor = job.page_cursor
        ahead: PageAhead | None = None
        defer = False  # hand the next page over as listed (runner.listing.mostly_skipped)
        try:
            fits = first_page_fits
            while True:
                if stop.is_set() or not (fits or budget.can_start_page()):
                    return self._yield(lease)
                fits = False
                started = budget.clock()
                fetched = ahead.result() if ahead else listing.fetch(cursor, defer)
                page, ahead = fetched.page, None
                if page.next_cursor is not None and self._fetches_ahead(budget, stop):
                    ahead = listing.fetch_ahead(page.next_cursor, defer)
                try:
                    result = self._store(job, page, fetched.incoming, ahead)
                finally:
                    if ahead is not None:  # the write is over, or failed: parse now if not yet
                        ahead.release()
                progress.add(result.counts)
                defer = mostly_skipped(result.counts, len(fetched.incoming))
                budget.record_page(budget.clock() - started)
                if page.next_cursor is None:
                    return Outcome.COMPLETED
                if result.cancel_requested:
                    cancel = Settlement(lease, JobStatus.CANCELLED, error="cancelled by the user")
                    return self._settle(cancel, Outcome.CANCELLED, {"job_id": str(job.id)})
                cursor = page.next_cursor
        finally:
            abandon.set()

    def _fetches_ahead(self, budget: ImportBudget, stop: threading.Event) -> bool:
        """Fetch the next page while this one is written, unless the run will stop first."""
        return self._pipeline and not stop.is_set() and budget.can_start_page(pages=2)

    def _store(
        self, job: Job, page: ContactPage, incoming: list[Listed], ahead: PageAhead | None
    ) -> PageResult:
        """Write the page in ONE transaction (``store.page``) and count it; the page ahead,
        if any, is parsed once the write waits on the database (``runner.listing``)."""
        stored = PageWrite(
            job, incoming, page.next_cursor, page.total, page.sync_token, self._region
        )
        result = write_page(
            self._engine,
            self._grants,
            stored,
            lease_seconds=self._lease_seconds,
            webhooks=self._jobs.webhooks,
            before_long_wait=ahead.release if ahead is not None else None,
        )
        counts = result.counts
        self._metrics.record_contacts(counts)
        log.info(
            "page imported",
            extra={
                "job_id": str(job.id),
                "contacts": len(incoming),
                "provider_total": page.total,
                "last_page": page.next_cursor is None,
                **counts.as_log_fields(),
            },
        )
        return result

    def _yield(self, lease: Lease) -> Outcome:
        """Stop cleanly at a page boundary; the attempt is refunded and the cursor kept."""
        settlement = Settlement(lease, refund=True)
        return self._settle(settlement, Outcome.CONTINUING, {"job_id": str(lease.job_id)})

    def _lease_keeping_sleep(
        self, lease: Lease, stopping: Callable[[], bool]
    ) -> Callable[[float], None]:
        """A sleep for the provider client's retries that renews the lease while it waits.

        A long ``Retry-After`` would otherwise outlive the lease and hand the job to another
        worker mid-page. Shutting down interrupts the wait.
        """

        def sleep(seconds: float) -> None:
            clock = self._clock
            deadline = clock() + seconds
            renew_at = clock() + self._lease_seconds / 3
            while (left := deadline - clock()) > 0:
                self._sleep(min(left, 0.2))
                if stopping():
                    raise _Stopping
                if clock() >= renew_at:
                    self._jobs.heartbeat(lease)
                    renew_at = clock() + self._lease_seconds / 3

        return sleep

    def _after_error(self, job: Job, exc: BaseException, extra: dict[str, object]) -> Outcome:
        """Settle the job after ``exc`` (already translated), as the exception tree says."""
        if isinstance(exc, LeaseLost):
            log.warning("lease lost; another worker owns the job now", extra=extra)
            return Outcome.LEASE_LOST
        if isinstance(exc, ContactImportError) and not exc.counts_attempt:
            log.warning("interrupted: %s", exc, extra=extra)
            return self._settle(self._outage_release(job), Outcome.INTERRUPTED, extra)
        if isinstance(exc, ContactImportError) and not exc.transient:
            return self._fail(job.lease, str(exc), extra, failure_reason(exc))
        if isinstance(exc, ContactImportError):
            # What went wrong, never what happens next: the retry adds "retrying" or "gave up
            # after N attempts" (a "will retry" here once ended as "…; will retry (gave up…)").
            return self._retry_later(job, exc, str(exc), extra)
        log.exception("unexpected error in import", extra=extra, exc_info=exc)
        return self._retry_later(job, exc, f"internal error ({type(exc).__name__})", extra)

    def _outage_release(self, job: Job) -> Settlement:
        return Settlement(
            job.lease,
            delay=OUTAGE_RELEASE_DELAY,
            refund=True,
            error="the database was unavailable; the import resumes from where it stopped",
            decided_at=self.pending.clock(),
        )

    def _settle(
        self, settlement: Settlement, outcome: Outcome, extra: dict[str, object]
    ) -> Outcome:
        """Apply the run's last write; during an outage it waits in ``pending`` instead."""
        try:
            self.pending.apply(settlement)
        except LeaseLost:
            log.warning("could not %s the job: lease lost", settlement.what, extra=extra)
            return Outcome.LEASE_LOST
        except DatabaseUnavailable:
            self.pending.add(settlement)
            return Outcome.INTERRUPTED
        except StatementFailed:
            log.exception(
                "could not %s the job; its lease will expire", settlement.what, extra=extra
            )
            return Outcome.LEASE_LOST
        return outcome

    def _fail(
        self, lease: Lease, message: str, extra: dict[str, object], reason: FailureReason
    ) -> Outcome:
        outcome = self._settle(
            Settlement(lease, JobStatus.FAILED, error=message), Outcome.FAILED, extra
        )
        if outcome is Outcome.FAILED:
            self._metrics.record_failure(reason)
            log.warning("job failed: %s", message, extra=extra | {"reason": reason.value})
        return outcome

    def _retry_later(
        self, job: Job, exc: BaseException, message: str, extra: dict[str, object]
    ) -> Outcome:
        retry_after = exc.retry_after if isinstance(exc, RateLimited) else None
        decision = decide_retry(job.attempts, job.max_attempts, self._jitter(), retry_after)
        if decision.delay is None:
            return self._fail(
                job.lease,
                f"{message} (gave up after {job.attempts} attempts)",
                extra,
                failure_reason(exc),
            )
        log.warning("transient error, retrying in %.0fs: %s", decision.delay, message, extra=extra)
        release = Settlement(
            job.lease, delay=decision.delay, error=message, decided_at=self.pending.clock()
        )
        return self._settle(release, Outcome.RETRYING, extra)
