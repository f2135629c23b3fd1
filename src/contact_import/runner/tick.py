"""One tick: what the cron route and `contact-import tick` do, within a time budget."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from contact_import.metrics import Metrics
from contact_import.runner.importer import ImportBudget, Importer, Outcome
from contact_import.store.db_errors import map_db_errors
from contact_import.store.jobs import Job, JobStore, new_worker_name
from contact_import.store.oauth_states import prune_expired_states

__all__ = ["TickSummary", "run_tick"]

log = logging.getLogger("contact_import.tick")


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
    clock: Callable[[], float] = time.monotonic,
) -> TickSummary:
    """Settle dead leases, claim up to ``max_jobs`` and import them side by side.

    Each job stops at a page boundary when the shared budget cannot fit another page, and
    resumes from its cursor on a later tick. Raises DatabaseUnavailable when the database
    cannot be reached before anything is claimed; once jobs run, the importer settles each
    of them whatever happens. ``clock`` measures the budget (tests pass a fake one).
    """
    metrics.cron_ticks.inc()
    log.info("tick started", extra={"budget_seconds": budget_seconds, "max_jobs": max_jobs})
    budget = ImportBudget.seconds(budget_seconds, clock)
    with map_db_errors():  # an outage here raises DatabaseUnavailable: the route answers 503
        claimed = _settle_then_claim(jobs, importer, metrics, worker or new_worker_name(), max_jobs)
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
