"""Continuous sync: what ticks and workers do to keep connected accounts in step.

Every account whose last complete listing is older than ``SYNC_INTERVAL_SECONDS`` gets an
incremental import (``trigger`` sync) queued, in one statement (``JobStore.queue_syncs``);
the job lists from the stored sync token / delta link, so only changes travel. A grant whose
refresh failed for good (``refresh_failed``) or that the user disconnected is never queued.
"""

from __future__ import annotations

import logging

from contact_import.metrics import Metrics
from contact_import.store.jobs import JobStore

__all__ = ["queue_due_syncs"]

log = logging.getLogger("contact_import.sync")


def queue_due_syncs(jobs: JobStore, metrics: Metrics, interval_seconds: float) -> int:
    """Queue the sync imports now due (none when ``interval_seconds`` is 0); how many."""
    if interval_seconds <= 0:
        return 0
    queued = jobs.queue_syncs(interval_seconds)
    metrics.record_queued("sync", len(queued))
    if queued:
        log.info("queued sync imports", extra={"count": len(queued)})
    return len(queued)
