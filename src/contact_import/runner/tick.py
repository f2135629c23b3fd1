"""One tick: what the cron route and `contact-import tick` do, within a time budget."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any
from uuid import UUID

from contact_import.errors import StoreError
from contact_import.metrics import Metrics
from contact_import.runner.importer import ImportBudget, Importer, Outcome
from contact_import.runner.retention import Retention
from contact_import.runner.sync import queue_due_syncs
from contact_import.runner.webhooks import Deliverer
from contact_import.store.db_errors import map_db_errors
from contact_import.store.jobs import Job, JobStore, new_worker_name
from contact_import.store.oauth_states import prune_expired_states

__all__ = ["TickSummary", "run_tick"]

log = logging.getLogger("contact_import.tick")

# The part of a tick's budget kept for webhook deliveries (when WEBHOOK_URL is set).
WEBHOOK_BUDGET_SHARE = 0.25


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
    worker: str | None = None,
    sync_interval: float = 0.0,
    deliverer: Deliverer | None = None,
    retention: Retention | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> TickSummary:
    """Settle dead leases, queue the sync imports due (``sync_interval`` seconds; 0: off),
    claim up to ``max_jobs`` and import them side by side.

    Each job stops at a page boundary when the shared budget cannot fit another page, and
    resumes from its cursor on a later tick. Raises DatabaseUnavailable when the database
    cannot be reached before anything is claimed; once jobs run, the importer settles each
    of them whatever happens. ``clock`` measures the budget (tests pass a fake one).

    With a ``deliverer``, imports get ``1 - WEBHOOK_BUDGET_SHARE`` of the budget and webhook
    deliveries what is left after them; ``retention`` prunes before the claim.
    """
    metrics.cron_ticks.inc()
    log.info("tick started", extra={"budget_seconds": budget_seconds, "max_jobs": max_jobs})
    started = clock()
    share = 0.0 if deliverer is None else WEBHOOK_BUDGET_SHARE
    budget = ImportBudget.seconds(budget_seconds * (1 - share), clock)
    with map_db_errors():  # an outage here raises DatabaseUnavailable: the route answers 503
        queue_due_syncs(jobs, metrics, sync_interval)
        if retention is not None:
            retention.run()
        claimed = _settle_then_claim(jobs, importer, metrics, worker or new_worker_name(), max_jobs)
    summary = _import_claimed(importer, claimed, budget)
    if deliverer is not None:
        _deliver(deliverer, started + budget_seconds - clock())
    return summary


def _import_claimed(importer: Importer, claimed: list[Job], budget: ImportBudget) -> TickSummary:
    summary = TickSummary(claimed=len(claimed))
    if not claimed:
        log.info("no pending jobs")
        return summary
    log.info(
        "found pending jobs",
        extra={"count": len(claimed), "job_ids": [str(job.id) for job in claimed]},
    )
    with ThreadPoolExecutor(max_workers=len(claimed), thread_name_prefix="tick") as pool:
        outcomes = list(pool.map(lambda job: importer.run(job, budget), claimed))
    for job, outcome in zip(claimed, outcomes, strict=True):
        summary.add(job.id, outcome)
    summary.longest_page_seconds = budget.longest_page
    log.info("tick finished", extra=summary.log_fields())
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
