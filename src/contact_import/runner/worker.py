"""A long-running worker: N imports at once, woken by LISTEN/NOTIFY, polling as a fallback."""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

import psycopg
from sqlalchemy import Engine

from contact_import.runner.importer import ImportBudget, Importer, Outcome
from contact_import.store.db import is_postgres
from contact_import.store.jobs import NOTIFY_CHANNEL, Job, JobStore, new_worker_name

__all__ = ["Worker"]

log = logging.getLogger("contact_import.worker")


class Worker:
    """Claims jobs while it has free slots; ``stop`` (e.g. SIGTERM) ends it gracefully.

    On stop, each running import finishes the page it is on, releases its lease (refunding the
    attempt) and the job resumes elsewhere from its cursor.
    """

    def __init__(
        self,
        engine: Engine,
        jobs: JobStore,
        importer: Importer,
        *,
        concurrency: int,
        poll_seconds: float,
        name: str | None = None,
        reap_seconds: float = 5.0,
        listen_url: str | None = None,
    ) -> None:
        self._engine = engine
        self._jobs = jobs
        self._importer = importer
        self._concurrency = concurrency
        self._poll = poll_seconds
        self._reap_seconds = reap_seconds
        # A libpq URL to LISTEN on (Runtime.listen_url); None: poll only.
        self._listen_url = listen_url
        self._last_reap = -float("inf")
        self.name = name or new_worker_name()
        self.stop = threading.Event()
        self._wake = threading.Event()
        self._running: set[Future[Outcome]] = set()
        self.outcomes: dict[Outcome, int] = {}

    def run(self, *, once: bool = False) -> None:
        """Work until stopped; with ``once``, until no job is runnable and none is running."""
        log.info("worker started", extra={"worker": self.name, "concurrency": self._concurrency})
        listener = self._start_listener()
        with ThreadPoolExecutor(self._concurrency, thread_name_prefix="import") as pool:
            while not self.stop.is_set():
                self._reap_now_and_then()
                claimed = self._claim_free_slots()
                for job in claimed:
                    self._submit(pool, job)
                if once and not claimed and not self._running:
                    break
                if not claimed or len(self._running) >= self._concurrency:
                    self._wake.wait(self._poll)
                    self._wake.clear()
            self.stop.set()  # tells running imports to yield at their next page boundary
        if listener is not None:
            listener.join(timeout=5)
        log.info("worker stopped", extra={"worker": self.name})

    def _reap_now_and_then(self) -> None:
        """Settle dead jobs (see JobStore.reap) every few seconds, not on every wake-up."""
        now = time.monotonic()
        if now - self._last_reap >= self._reap_seconds:
            self._last_reap = now
            self._jobs.reap()

    def _claim_free_slots(self) -> list[Job]:
        self._running = {f for f in self._running if not f.done()}
        free = self._concurrency - len(self._running)
        return self._jobs.claim(self.name, free) if free > 0 else []

    def _submit(self, pool: ThreadPoolExecutor, job: Job) -> None:
        future = pool.submit(self._importer.run, job, ImportBudget(), self.stop)
        future.add_done_callback(self._done)
        self._running.add(future)

    def _done(self, future: Future[Outcome]) -> None:
        if not future.cancelled() and future.exception() is None:
            outcome = future.result()
            self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
        self._wake.set()

    def request_stop(self) -> None:
        self.stop.set()
        self._wake.set()

    # -- LISTEN/NOTIFY --------------------------------------------------------------------

    def _start_listener(self) -> threading.Thread | None:
        if self._listen_url is None or not is_postgres(self._engine):
            return None
        thread = threading.Thread(
            target=self._listen, args=(self._listen_url,), name="listen", daemon=True
        )
        thread.start()
        return thread

    def _listen(self, url: str) -> None:
        """Wake the loop on each NOTIFY; on any error fall back to polling and reconnect."""
        while not self.stop.is_set():
            try:
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    while not self.stop.is_set():
                        for _ in conn.notifies(timeout=1.0, stop_after=1):
                            self._wake.set()
            except psycopg.Error as exc:
                log.warning("LISTEN connection failed (%s); polling", type(exc).__name__)
                self.stop.wait(self._poll)
