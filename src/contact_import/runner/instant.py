"""Instant small imports: the OAuth callback imports the job it just created, within a budget.

The original meant its import routine to serve "the callback route (for very small imports)"
too. Here the callback claims that very job by id (``JobStore.claim_job``: the same lease, fence
and page transactions as a tick) and imports pages for ``CALLBACK_BUDGET_SECONDS``. A book that
fits is ``completed`` before the callback answers; a larger one is released at a page boundary
with its attempt refunded, and a worker or the next tick continues from its cursor.
"""

from __future__ import annotations

import logging

from contact_import.errors import ContactImportError
from contact_import.metrics import Metrics
from contact_import.runner.importer import ImportBudget, Importer
from contact_import.store.db_errors import as_store_error
from contact_import.store.jobs import Job, JobStore, new_worker_name

__all__ = ["import_now"]

log = logging.getLogger("contact_import.instant")


def import_now(
    jobs: JobStore, importer: Importer, job: Job, *, metrics: Metrics, budget_seconds: float
) -> Job:
    """Import ``job`` for up to ``budget_seconds`` if nobody holds it; the job as it is then.

    Does nothing with a budget of 0, or when the job is not runnable any more (a worker woken
    by NOTIFY picked it up first). Never raises: the importer settles the job whatever the
    provider does, and a database error here leaves the job queued for a worker or a tick.
    """
    if budget_seconds <= 0:
        return job
    extra = {"job_id": str(job.id)}
    try:
        claimed = jobs.claim_job(f"callback@{new_worker_name()}", job.id)
        metrics.record_claim(claimed)
        if claimed.jobs:
            outcome = importer.run(claimed.jobs[0], ImportBudget.seconds(budget_seconds))
            log.info("callback import %s", outcome.value, extra=extra)
        else:
            log.info("callback import skipped: the job is already running", extra=extra)
        return jobs.get(job.id)
    except Exception as exc:
        error = as_store_error(exc)
        trace = None if isinstance(error, ContactImportError) else error  # a bug: keep it
        log.warning("callback import stopped: %s", error, extra=extra, exc_info=trace)
        return job
