"""A long-running worker: N imports at once, woken by LISTEN/NOTIFY, polling as a fallback.

It outlives the database: when a claim, a reap or a settlement meets an outage (restart,
failover, network), the loop says so once, backs off (bounded, jittered), and carries on when
the database is back; the LISTEN connection reconnects and listens again on its own.
Releases and finishes that could not be written wait in the importer's ``pending`` queue and
land first thing when the database returns, so an interrupted job resumes at once.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial

from contact_import.errors import ContactImportError, DatabaseUnavailable, StoreError
from contact_import.metrics import Metrics
from contact_import.runner.importer import ImportBudget, Importer, Outcome
from contact_import.runner.outage import Backoff, OutageWatch
from contact_import.runner.retention import Retention
from contact_import.runner.sync import queue_due_syncs
from contact_import.runner.webhooks import Deliverer
from contact_import.store.db_errors import map_db_errors, translate_db_error
from contact_import.store.jobs import Job, JobStore, new_worker_name
from contact_import.store.notifications import listen_for_jobs

__all__ = ["Worker"]

log = logging.getLogger("contact_import.worker")


class Worker:
    """Claims jobs while it has free slots; ``stop`` (e.g. SIGTERM) ends it gracefully.

    On stop, each running import finishes the page it is on, releases its lease (refunding the
    attempt) and the job resumes elsewhere from its cursor. ``listen_url`` (a libpq URL) is
    where to LISTEN for new jobs; None means poll only. ``failure`` says why the worker
    stopped on its own (a database that refuses it for good), None otherwise.
    """

    def __init__(
        self,
        jobs: JobStore,
        importer: Importer,
        *,
        metrics: Metrics,
        concurrency: int,
        poll_seconds: float,
        name: str | None = None,
        reap_seconds: float = 5.0,
        listen_url: str | None = None,
        sync_interval: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] = random.random,
        deliverer: Deliverer | None = None,
        retention: Retention | None = None,
    ) -> None:
        self._jobs = jobs
        self._importer = importer
        self._metrics = metrics
        self._concurrency = concurrency
        self._poll = poll_seconds
        self._reap_seconds = reap_seconds
        self._last_reap = -float("inf")
        # Continuous sync (0: off): looked for at most every reap period, or the interval.
        self._sync_interval = sync_interval
        self._sync_seconds = min(reap_seconds, sync_interval) if sync_interval else 0.0
        self._last_sync = -float("inf")
        # A libpq URL to LISTEN on (Runtime.listen_url); None: poll only.
        self._listen_url = listen_url
        self._clock, self._jitter = clock, jitter
        self.name = name or new_worker_name()
        self.stop = threading.Event()
        self._wake = threading.Event()
        self._running: set[Future[Outcome]] = set()
        self.outcomes: dict[Outcome, int] = {}
        self.failure: BaseException | None = None
        self.outage = OutageWatch(
            log, clock=clock, backoff=Backoff(jitter=jitter), extra={"worker": self.name}
        )
        self._errors = Backoff(jitter=jitter)  # unexpected errors of the loop itself
        # Webhook deliveries run on a thread of their own (never on an import's page path);
        # retention in the loop, every ``retention.every_seconds``.
        self._deliverer = deliverer
        self._deliver_wake = threading.Event()
        self._retention = retention

    def run(self, *, once: bool = False) -> None:
        """Work until stopped; with ``once``, until no job is runnable and none is running.

        Never raises: database outages are waited out; an error the worker cannot go on
        after ends it with ``failure`` set.
        """
        log.info("worker started", extra={"worker": self.name, "concurrency": self._concurrency})
        listener = self._start_listener()
        delivering = self._start_delivering()
        try:
            with ThreadPoolExecutor(self._concurrency, thread_name_prefix="import") as pool:
                try:
                    self._loop(pool, once=once)
                finally:
                    self.stop.set()  # tells running imports to yield at their next page boundary
        except Exception as exc:
            self._give_up(exc)
        finally:
            self.stop.set()
            self._settle_before_exit()
            self._deliver_wake.set()
            for thread in (listener, delivering):
                if thread is not None:
                    thread.join(timeout=5)
        reason = {} if self.failure is None else {"reason": str(self.failure)}
        log.info("worker stopped", extra={"worker": self.name} | reason)

    def _loop(self, pool: ThreadPoolExecutor, *, once: bool) -> None:
        while not self.stop.is_set():
            try:
                claimed = self._step()
            except Exception as exc:
                if not self._wait_out(exc):
                    return
                continue
            self.outage.recovered()
            self._errors.reset()
            for job in claimed:
                self._submit(pool, job)
            if once and not claimed and not self._running and not self._importer.pending:
                return
            if not claimed or len(self._running) >= self._concurrency:
                self._sleep(self._poll)

    def _step(self) -> list[Job]:
        """One pass: land waiting settlements first (their jobs resume now), reap, claim."""
        with map_db_errors():
            self._importer.settle_pending()
            self._reap_now_and_then()
            self._queue_syncs_now_and_then()
            if self._retention is not None:
                self._retention.run_now_and_then()
            return self._claim_free_slots()

    def _wait_out(self, exc: BaseException) -> bool:
        """Back off after a failed pass; False when the error says the worker cannot go on."""
        error = translate_db_error(exc)
        if isinstance(error, ContactImportError) and not error.transient:
            self._give_up(error)
            return False
        if isinstance(error, DatabaseUnavailable):
            delay = self.outage.failed(error)
        else:
            log.error(
                "worker loop failed; trying again", extra={"worker": self.name}, exc_info=error
            )
            delay = self._errors.next_delay()
        self._sleep(delay)
        return True

    def _give_up(self, error: BaseException) -> None:
        self.failure = error
        # Our own errors say what is wrong; anything else is a bug: keep its traceback.
        trace = None if isinstance(error, ContactImportError) else error
        log.error("worker cannot go on: %s", error, extra={"worker": self.name}, exc_info=trace)
        self.stop.set()

    def _sleep(self, seconds: float) -> None:
        """Until ``seconds`` pass, a job this process released is due again, or something wakes
        the loop (NOTIFY, a finished import, stop)."""
        pending = self._importer.pending
        due = pending.next_due()
        if due is not None:
            seconds = min(seconds, max(0.01, due - pending.clock()))
        self._wake.wait(seconds)
        self._wake.clear()

    def _reap_now_and_then(self) -> None:
        """Settle dead jobs (see JobStore.reap) every few seconds, not on every wake-up."""
        now = self._clock()
        if now - self._last_reap >= self._reap_seconds:
            self._last_reap = now
            reaped = self._jobs.reap()
            self._metrics.record_reap(reaped)
            if reaped.failed or reaped.cancelled:
                self._deliver_wake.set()  # their events are in the outbox

    def _queue_syncs_now_and_then(self) -> None:
        """Queue the continuous-sync imports due (see ``runner.sync``), now and then."""
        now = self._clock()
        if self._sync_interval and now - self._last_sync >= self._sync_seconds:
            self._last_sync = now
            queue_due_syncs(self._jobs, self._metrics, self._sync_interval)

    def _claim_free_slots(self) -> list[Job]:
        self._running = {f for f in self._running if not f.done()}
        free = self._concurrency - len(self._running)
        if free <= 0:
            return []
        claimed = self._jobs.claim(self.name, free)
        self._metrics.record_claim(claimed)
        return claimed.jobs

    def _submit(self, pool: ThreadPoolExecutor, job: Job) -> None:
        future = pool.submit(self._importer.run, job, ImportBudget(), self.stop)
        future.add_done_callback(partial(self._done, job))
        self._running.add(future)

    def _done(self, job: Job, future: Future[Outcome]) -> None:
        error = None if future.cancelled() else future.exception()
        if error is not None:  # Importer.run catches everything; this would be a bug there
            log.error("import crashed", extra={"job_id": str(job.id)}, exc_info=error)
        elif not future.cancelled():
            outcome = future.result()
            self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
        self._wake.set()
        self._deliver_wake.set()  # a job that ended has an event waiting

    def _settle_before_exit(self) -> None:
        """One last try for settlements still waiting; if the database is still away, their
        leases expire and another worker takes the jobs over."""
        waiting = len(self._importer.pending)
        if not waiting:
            return
        try:
            self._importer.settle_pending()
        except Exception as exc:
            log.warning(
                "stopping with %d jobs unsettled (%s); their leases will expire",
                len(self._importer.pending),
                translate_db_error(exc),
                extra={"worker": self.name},
            )

    def request_stop(self) -> None:
        self.stop.set()
        self._wake.set()

    # -- webhook deliveries ---------------------------------------------------------------

    def _start_delivering(self) -> threading.Thread | None:
        if self._deliverer is None:
            return None
        thread = threading.Thread(target=self._deliver, name="webhooks", daemon=True)
        thread.start()
        return thread

    def _deliver(self) -> None:
        """Deliver due events, then wait for a job to end or the next poll; outages are
        waited out as the loop's are."""
        assert self._deliverer is not None
        watch = OutageWatch(
            log,
            gone="webhook delivery: database unavailable; retrying until it is back",
            back="webhook delivery: database is back",
            clock=self._clock,
            backoff=Backoff(jitter=self._jitter),
            extra={"worker": self.name},
        )
        while not self.stop.is_set():
            wait = self._poll
            try:
                with map_db_errors():
                    self._deliverer.deliver_due()
                watch.recovered()
            except Exception as exc:
                error = translate_db_error(exc)
                if not isinstance(error, StoreError):
                    log.error("webhook delivery failed", extra={"worker": self.name}, exc_info=exc)
                wait = watch.failed(error)
            self._deliver_wake.wait(wait)
            self._deliver_wake.clear()

    # -- LISTEN/NOTIFY --------------------------------------------------------------------

    def _start_listener(self) -> threading.Thread | None:
        if self._listen_url is None:
            return None
        thread = threading.Thread(target=self._listen, name="listen", daemon=True)
        thread.start()
        return thread

    def _listen(self) -> None:
        """Wake the loop on each NOTIFY; while the connection is down, the loop polls."""
        watch = OutageWatch(
            log,
            gone="LISTEN connection failed; polling until it is back",
            back="listening for new jobs again",
            level=logging.INFO,
            clock=self._clock,
            backoff=Backoff(jitter=self._jitter),
            extra={"worker": self.name},
        )
        while not self.stop.is_set():
            try:
                self._listen_until_error(watch)
            except Exception as exc:
                if not isinstance(exc, StoreError):  # the connection went away: not a bug
                    log.error("LISTEN failed", extra={"worker": self.name}, exc_info=exc)
                self.stop.wait(watch.failed(exc))

    def _listen_until_error(self, watch: OutageWatch) -> None:
        assert self._listen_url is not None
        with listen_for_jobs(self._listen_url, self._jobs.notify_channel) as notified:
            watch.recovered()
            self._wake.set()  # a job may have been queued while nobody listened
            while not self.stop.is_set():
                if notified(1.0):
                    self._wake.set()
