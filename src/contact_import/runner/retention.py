"""Bounded growth: ticks and workers delete what the retention settings let go.

``AUDIT_RETENTION_DAYS``: ``imported_contacts`` rows of jobs that ended longer ago;
``WEBHOOK_RETENTION_DAYS``: delivered (and given-up) webhook events. 0 keeps them forever.
A pass deletes at most ``batch`` times ``batches`` rows of each (store/retention.py), so it stays
short; a large backlog goes over several passes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from contact_import.metrics import Metrics
from contact_import.store.retention import Pruned, prune_audit_rows, prune_webhook_events

__all__ = ["Retention"]

log = logging.getLogger("contact_import.retention")


@dataclass
class Retention:
    engine: Engine
    metrics: Metrics
    audit_days: float
    webhook_days: float
    batch: int = 1000
    batches: int = 3
    # A worker prunes this often; a tick prunes once, whatever its interval.
    every_seconds: float = 60.0
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    monotonic: Callable[[], float] = time.monotonic
    _last: float = field(default=-float("inf"), repr=False)

    def run(self) -> Pruned:
        """One bounded pass; raises the database's errors."""
        now = self.clock()
        audit = events = 0
        if self.audit_days > 0:
            before = now - timedelta(days=self.audit_days)
            audit = prune_audit_rows(self.engine, before, batch=self.batch, batches=self.batches)
        if self.webhook_days > 0:
            before = now - timedelta(days=self.webhook_days)
            events = prune_webhook_events(
                self.engine, before, batch=self.batch, batches=self.batches
            )
        pruned = Pruned(audit_rows=audit, webhook_events=events)
        self.metrics.record_pruned(pruned)
        if audit or events:
            log.info("retention deleted old rows", extra=pruned._asdict())
        return pruned

    def run_now_and_then(self) -> Pruned | None:
        """A pass if ``every_seconds`` went by since the last one (a worker's loop)."""
        now = self.monotonic()
        if now - self._last < self.every_seconds:
            return None
        self._last = now
        return self.run()
