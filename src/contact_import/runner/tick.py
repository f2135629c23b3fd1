"""One tick: what the cron route and `contact-import tick` do, within a time budget."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any
from uuid import UUID

from contact_import.errors import ContactImportError, StoreError
from contact_import.metrics import Metrics
from contact_import.runner.importer import ImportBudget, Importer, Outcome
from contact_import.runner.retention import Retention
from contact_import.runner.sync import queue_due_syncs
from contact_import.runner.webhooks import Deliverer
from contact_import.store.db_errors import as_store_error, map_db_errors
from contact_import.store.jobs import Claimed, Job, JobStore, new_worker_name
from contact_import.store.oauth_states import prune_expired_states

__all__ = ["DEFAULT_CONCURRENCY", "TickSummary", "run_tick"]

log = logging.getLogger("contact_import.tick")

# Imports one tick runs at once (TICK_CONCURRENCY): pages wait on the provider and the
# database, so a few threads overlap those waits even on a small serverless instance.
DEFAULT_CONCURRENCY = 4
# The part of a tick's budget kept for webhook deliveries (when WEBHOOK_URL is set).
WEBHOOK_BUDGET_SHARE = 0.25
# Outcomes after which the job is no longer in the queue.
_SETTLED = frozenset({Outcome.COMPLETED, Outcome.FAILED, Outcome.CANCELLED})


@dataclass
class TickSummary:
    """The cron route's JSON, as the original answered it, plus ``continuing``/``cancelled``."""

    processed: list[UUID] = field(default_factory=list)
    failed: list[UUID] = field(default_factory=list)
    continuing: list[UUID] = field(default_factory=list)
    cancelled: list[UUID] = field(default_factory=list)
    claimed: int = 0
    longest_page_seconds: float = 0.0

    def add(self, job_id: UUID, outcome: Outcome) -> None:
        bucket = {
            Outcome.COMPLETED: self.processed,
            Outcome.FAILED: self.failed,
            Outcome.CANCELLED: self.cancelled,
        }.get(outcome, self.continuing)
        bucket.append(job_id)

    def log_fields(self) -> dict[str, int]:
        return {
            "processed": len(self.processed),
            "failed": len(self.failed),
            "continuing": len(self.continuing),
            "cancelled": len(self.cancelled),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "message": "Processing complete" if self.claimed else "No pending jobs",
            "processed": len(self.processed),
            "failed": len(self.failed),
            "job_ids": {
                "processed": [str(i) for i in self.processed],
                "failed": [str(i) for i in self.failed],
                "continuing": [str(i) for i in self.continuing],
                "cancelled": [str(i) for i in self.cancelled],
            },
        }


def run_tick(
    jobs: JobStore,
    importer: Importer,
    *,
    metrics: Metrics,
    budget_seconds: float,
    max_jobs: int,
    concurrency: int = DEFAULT_CONCURRENCY,
    worker: str | None = None,
    sync_interval: float = 0.0,
    deliverer: Deliverer | None = None,
    retention: Retention | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> TickSummary:
    """Settle dead leases, queue the sync imports due (``sync_interval`` seconds; 0: off),
    then import jobs ``concurrency`` at a time until the budget is spent, nothing is
    runnable, or ``max_jobs`` jobs were claimed.

    Each freed slot claims the next job while the shared budget can fit another page; each job
    stops at a page boundary when it cannot, and resumes from its cursor on a later tick. A
    tick runs each job at most once. Raises DatabaseUnavailable when the database cannot be
    reached before anything is claimed; once jobs run, the importer settles each of them
    whatever happens, and a later claim that fails only ends the claiming. ``clock`` measures
    the budget (tests pass a fake one).

    With a ``deliverer``, imports get ``1 - WEBHOOK_BUDGET_SHARE`` of the budget and webhook
    deliveries what is left after them; ``retention`` prunes before the claim.
    """
    metrics.cron_ticks.inc()
    log.info("tick started", extra={"budget_seconds": budget_seconds, "max_jobs": max_jobs})
    started = clock()
    share = 0.0 if deliverer is None else WEBHOOK_BUDGET_SHARE
    budget = ImportBudget.seconds(budget_seconds * (1 - share), clock)
    name = worker or new_worker_name()
    slots = max(1, min(concurrency, max_jobs))
    with map_db_errors():  # an outage here raises DatabaseUnavailable: the route answers 503
        queue_due_syncs(jobs, metrics, sync_interval)
        if retention is not None:
            retention.run()
        claimed = _settle_then_claim(jobs, importer, metrics, name, slots)
    loop = _ClaimLoop(
        jobs=jobs, importer=importer, metrics=metrics, worker=name, budget=budget,
        summary=TickSummary(claimed=len(claimed)),
    )  # fmt: skip
    summary = loop.import_all(claimed, slots, max_jobs)
    if deliverer is not None:
        _deliver(deliverer, started + budget_seconds - clock())
    return summary


def _deliver(deliverer: Deliverer, seconds: float) -> None:
    """Spend what is left of the tick on webhook deliveries; an outage only ends them."""
    try:
        with map_db_errors():
            done = deliverer.deliver_due(seconds=seconds)
    except StoreError as exc:
        log.warning("webhook deliveries stopped: %s", exc)
        return
    if done.attempts:
        log.info("webhooks attempted", extra=asdict(done))


class _ClaimLoop:
    """``slots`` imports at a time; each freed slot claims the next job while the budget can
    fit a page. Jobs a run gave back (retrying, interrupted, …) are not claimed again."""

    def __init__(
        self,
        *,
        jobs: JobStore,
        importer: Importer,
        metrics: Metrics,
        worker: str,
        budget: ImportBudget,
        summary: TickSummary,
    ) -> None:
        self._jobs, self._importer, self._metrics = jobs, importer, metrics
        self._worker, self._budget, self._summary = worker, budget, summary
        self._given_back: list[UUID] = []
        self._drained = False

    def import_all(self, first: list[Job], slots: int, max_jobs: int) -> TickSummary:
        """Run ``first`` and whatever the freed slots claim; the tick's summary."""
        summary = self._summary
        if not first:
            log.info("no pending jobs")
            return summary
        ids = [str(job.id) for job in first]
        log.info("found pending jobs", extra={"count": len(ids), "job_ids": ids})
        self.run(first, slots, max_jobs)
        summary.longest_page_seconds = self._budget.longest_page
        log.info("tick finished", extra=summary.log_fields() | {"claimed": summary.claimed})
        return summary

    def run(self, first: list[Job], slots: int, max_jobs: int) -> None:
        running: dict[Future[Outcome], Job] = {}
        with ThreadPoolExecutor(max_workers=slots, thread_name_prefix="tick") as pool:
            queue = first
            while queue or running:
                for job in queue:
                    # Claimed because the budget fitted a page: that page starts.
                    run = partial(self._importer.run, first_page_fits=True)
                    running[pool.submit(run, job, self._budget)] = job
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    self._record(running.pop(future), future.result())
                room = min(slots - len(running), max_jobs - self._summary.claimed)
                queue = self._claim_more(room)

    def _record(self, job: Job, outcome: Outcome) -> None:
        self._summary.add(job.id, outcome)
        if outcome not in _SETTLED:
            self._given_back.append(job.id)

    def _claim_more(self, room: int) -> list[Job]:
        """Up to ``room`` more jobs; none once the queue ran dry or the budget cannot fit a
        page. A failed claim (the database went away) ends the claiming, not the tick."""
        if self._drained or room <= 0 or not self._budget.can_start_page():
            return []
        try:
            claimed = self._jobs.claim(self._worker, room, exclude=self._given_back)
        except Exception as exc:  # the running imports settle anyway; the tick answers
            error = as_store_error(exc)
            trace = None if isinstance(error, ContactImportError) else error  # a bug: keep it
            log.warning("tick stops claiming: %s", error, exc_info=trace)
            claimed = Claimed([], reclaimed=0)
        self._metrics.record_claim(claimed)
        self._drained = len(claimed.jobs) < room
        self._summary.claimed += len(claimed.jobs)
        if claimed.jobs:
            ids = [str(job.id) for job in claimed.jobs]
            log.info("found pending jobs", extra={"count": len(ids), "job_ids": ids})
        return claimed.jobs


def _settle_then_claim(
    jobs: JobStore, importer: Importer, metrics: Metrics, worker: str, max_jobs: int
) -> list[Job]:
    """Land what an earlier tick of this process could not write, settle dead jobs, prune
    expired OAuth states, then claim."""
    importer.settle_pending()
    reaped = jobs.reap()
    metrics.record_reap(reaped)
    if reaped.failed or reaped.cancelled:
        log.info("settled dead jobs", extra=reaped._asdict())
    if pruned := prune_expired_states(jobs.engine):
        log.info("pruned expired oauth states", extra={"count": pruned})
    claimed = jobs.claim(worker, max_jobs)
    metrics.record_claim(claimed)
    return claimed.jobs
