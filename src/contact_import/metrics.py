"""Prometheus metrics of one process, in their own registry (built once, by the runtime).

The store says what happened (``Claimed``, ``Reaped``, a page's counts) and never counts
anything itself; the runners (importer, tick, worker) record those facts here, on the one
``Metrics`` the runtime builds and passes to each of them. The queue's gauges are read from
the database at scrape time, so every process reports the same truth however many workers
share the queue.

    contact_import_claims_total                       jobs claimed (one attempt each)
    contact_import_reclaims_total                     claims of a job whose lease had expired
    contact_import_completions_total                  imports completed
    contact_import_failures_total{reason}             imports failed, see ``FailureReason``
    contact_import_contacts_processed_total{action}   created / updated / skipped / failed
    contact_import_import_duration_seconds            histogram: job start to completion
    contact_import_cron_ticks_total                   ticks run (cron route or `tick`)
    contact_import_jobs_queued_total{trigger}         jobs queued: user (started), sync (continuous)
    contact_import_jobs{status}                       gauge, scrape time
    contact_import_queue_depth                        gauge, scrape time: runnable now
    contact_import_oldest_waiting_job_age_seconds     gauge, scrape time
    contact_import_webhook_deliveries_total{outcome}  attempts: delivered / retrying / gave_up
    contact_import_webhook_outbox_depth               gauge, scrape time: pending events
    contact_import_webhook_oldest_pending_age_seconds gauge, scrape time
    contact_import_retention_deleted_total{table}     rows deleted by retention
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError

from contact_import.domain.job import JobStatus
from contact_import.failures import FailureReason
from contact_import.store.job_rows import Claimed, PageCounts, QueueStats, Reaped
from contact_import.store.outbox import OutboxStats
from contact_import.store.retention import Pruned

__all__ = ["CONTACT_ACTIONS", "DELIVERY_OUTCOMES", "Metrics"]

log = logging.getLogger("contact_import.metrics")

CONTACT_ACTIONS = ("created", "updated", "skipped", "failed")
DELIVERY_OUTCOMES = ("delivered", "retrying", "gave_up")

# Imports last from a second (a small book) to hours (a huge one paced by rate limits).
_DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, float("inf"))


class Metrics:
    """The process's metrics; pass it to what produces events, never import a global."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.claims = Counter("contact_import_claims", "Jobs claimed.", registry=r)
        self.reclaims = Counter(
            "contact_import_reclaims",
            "Claims of a job whose previous lease had expired (its worker died or stalled).",
            registry=r,
        )
        self.completions = Counter("contact_import_completions", "Imports completed.", registry=r)
        self.failures = Counter(
            "contact_import_failures", "Imports failed, by reason.", ["reason"], registry=r
        )
        self.contacts = Counter(
            "contact_import_contacts_processed",
            "Contacts processed, by what happened to them.",
            ["action"],
            registry=r,
        )
        self.import_duration = Histogram(
            "contact_import_import_duration_seconds",
            "Seconds from a job's start to its completion.",
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.cron_ticks = Counter(
            "contact_import_cron_ticks", "Ticks run (cron route or `tick`).", registry=r
        )
        self.jobs_queued = Counter(
            "contact_import_jobs_queued",
            "Jobs queued, by trigger: user (a start, own tokens) or sync (continuous sync).",
            ["trigger"],
            registry=r,
        )
        for trigger in ("user", "sync"):
            self.jobs_queued.labels(trigger)
        # Every label value exists from the start: a rate over a series that appears
        # mid-way misses its first increment.
        for reason in FailureReason:
            self.failures.labels(reason.value)
        for action in CONTACT_ACTIONS:
            self.contacts.labels(action)
        self.webhook_deliveries = Counter(
            "contact_import_webhook_deliveries",
            "Webhook delivery attempts, by outcome.",
            ["outcome"],
            registry=r,
        )
        for outcome in DELIVERY_OUTCOMES:
            self.webhook_deliveries.labels(outcome)
        self.retention_deleted = Counter(
            "contact_import_retention_deleted",
            "Rows deleted by retention, by table.",
            ["table"],
            registry=r,
        )

    def watch_outbox(self, stats: Callable[[], OutboxStats]) -> None:
        """Report the webhook outbox's gauges, read with ``stats`` at each scrape."""
        self.registry.register(_OutboxCollector(stats))

    def record_delivery(self, outcome: str) -> None:
        self.webhook_deliveries.labels(outcome).inc()

    def record_pruned(self, pruned: Pruned) -> None:
        if pruned.audit_rows:
            self.retention_deleted.labels("imported_contacts").inc(pruned.audit_rows)
        if pruned.webhook_events:
            self.retention_deleted.labels("webhook_events").inc(pruned.webhook_events)

    def watch_queue(self, stats: Callable[[], QueueStats]) -> None:
        """Report the queue's gauges, read with ``stats`` at each scrape."""
        self.registry.register(_QueueCollector(stats))

    def record_claim(self, claimed: Claimed) -> None:
        self.claims.inc(len(claimed.jobs))
        self.reclaims.inc(claimed.reclaimed)

    def record_reap(self, reaped: Reaped) -> None:
        """Jobs the reap failed gave up: their last attempt died without finishing."""
        self.record_failure(FailureReason.GAVE_UP, reaped.failed)

    def record_queued(self, trigger: str, count: int = 1) -> None:
        if count:
            self.jobs_queued.labels(trigger).inc(count)

    def record_failure(self, reason: FailureReason, count: int = 1) -> None:
        if count:
            self.failures.labels(reason.value).inc(count)

    def record_contacts(self, counts: PageCounts) -> None:
        """What a page did to its contacts, by action."""
        for action, n in zip(CONTACT_ACTIONS, _by_action(counts), strict=True):
            if n:
                self.contacts.labels(action).inc(n)

    def record_completion(self, started_at: datetime, now: datetime | None = None) -> None:
        self.completions.inc()
        elapsed = ((now or datetime.now(UTC)) - started_at).total_seconds()
        self.import_duration.observe(max(0.0, elapsed))


def _by_action(counts: PageCounts) -> tuple[int, int, int, int]:
    return counts.created, counts.updated, counts.skipped, counts.failed


class _QueueCollector(Collector):
    """Gauges computed from the database when Prometheus scrapes, not kept in memory."""

    def __init__(self, stats: Callable[[], QueueStats]) -> None:
        self._stats = stats

    def describe(self) -> Iterable[GaugeMetricFamily]:
        # Names only: registering must not query the database.
        return _families()

    def collect(self) -> Iterable[GaugeMetricFamily]:
        try:
            stats = self._stats()
        except SQLAlchemyError as exc:
            log.warning("queue metrics unavailable: database error (%s)", type(exc).__name__)
            return []
        jobs, depth, oldest = _families()
        for status in JobStatus:
            jobs.add_metric([status.value], stats.by_status.get(status.value, 0))
        depth.add_metric([], stats.runnable)
        oldest.add_metric([], stats.oldest_wait_seconds)
        return [jobs, depth, oldest]


def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
    return (
        GaugeMetricFamily("contact_import_jobs", "Jobs by status.", labels=["status"]),
        GaugeMetricFamily(
            "contact_import_queue_depth", "Active jobs runnable now (due, unleased, not held)."
        ),
        GaugeMetricFamily(
            "contact_import_oldest_waiting_job_age_seconds",
            "Seconds the longest-waiting runnable job has been due; 0 when none waits.",
        ),
    )


class _OutboxCollector(Collector):
    """The outbox's gauges, computed from the database at scrape time."""

    def __init__(self, stats: Callable[[], OutboxStats]) -> None:
        self._stats = stats

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return _outbox_families()

    def collect(self) -> Iterable[GaugeMetricFamily]:
        try:
            stats = self._stats()
        except SQLAlchemyError as exc:
            log.warning("outbox metrics unavailable: database error (%s)", type(exc).__name__)
            return []
        depth, oldest = _outbox_families()
        depth.add_metric([], stats.depth)
        oldest.add_metric([], stats.oldest_pending_seconds)
        return [depth, oldest]


def _outbox_families() -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
    return (
        GaugeMetricFamily(
            "contact_import_webhook_outbox_depth", "Webhook events not yet delivered or given up."
        ),
        GaugeMetricFamily(
            "contact_import_webhook_oldest_pending_age_seconds",
            "Seconds since the oldest pending webhook event was written; 0 when none.",
        ),
    )
