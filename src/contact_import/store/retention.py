"""Bounded growth: delete audit rows of long-ended jobs and delivered webhook events.

Each batch is one short transaction deleting at most ``batch`` rows, so retention never
holds a lock for long and a pass stays bounded however much is due; what is left goes in
the next pass. Only jobs that ENDED (completed, failed, cancelled) before the cutoff lose
their audit rows: an active job, or one that ended inside the window, keeps every row.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, Engine, Select, and_, delete, or_, select, tuple_

from contact_import.domain.job import FINAL_STATUSES
from contact_import.domain.webhooks import EventStatus
from contact_import.store.schema import imported_contacts, jobs, webhook_attempts, webhook_events

__all__ = ["Pruned", "prune_audit_rows", "prune_webhook_events"]

_ENDED = [s.value for s in FINAL_STATUSES]


class Pruned(NamedTuple):
    """Rows one retention pass deleted."""

    audit_rows: int
    webhook_events: int


def _audit_batch(before: datetime, batch: int) -> Select[Any]:
    ic = imported_contacts.c
    ended_before = select(jobs.c.id).where(jobs.c.status.in_(_ENDED), jobs.c.completed_at < before)
    return (
        select(ic.import_job_id, ic.provider_contact_id)
        .where(ic.import_job_id.in_(ended_before))
        .limit(batch)
    )


def prune_audit_rows(engine: Engine, before: datetime, *, batch: int, batches: int) -> int:
    """Delete ``imported_contacts`` rows of jobs that ended before ``before``, at most
    ``batch`` rows per statement and ``batches`` statements; how many went."""
    ic = imported_contacts.c
    key = tuple_(ic.import_job_id, ic.provider_contact_id)
    return _in_batches(
        engine,
        lambda conn: (
            conn.execute(
                delete(imported_contacts).where(key.in_(_audit_batch(before, batch)))
            ).rowcount
        ),
        batch,
        batches,
    )


def _events_done_before(before: datetime, batch: int) -> Select[Any]:
    """Delivered before the cutoff, or given up and created before it (a given-up event is
    at least a day old: the retry schedule ran out)."""
    e = webhook_events.c
    done = or_(
        and_(e.status == EventStatus.DELIVERED.value, e.delivered_at < before),
        and_(e.status == EventStatus.GAVE_UP.value, e.created_at < before),
    )
    return select(e.id).where(done).limit(batch)


def _delete_events(conn: Connection, before: datetime, batch: int) -> int:
    ids = list(conn.execute(_events_done_before(before, batch)).scalars())
    if not ids:
        return 0
    conn.execute(delete(webhook_attempts).where(webhook_attempts.c.event_id.in_(ids)))
    return conn.execute(delete(webhook_events).where(webhook_events.c.id.in_(ids))).rowcount


def prune_webhook_events(engine: Engine, before: datetime, *, batch: int, batches: int) -> int:
    """Delete finished webhook events (and their attempts) older than ``before``, in batches."""
    return _in_batches(engine, lambda conn: _delete_events(conn, before, batch), batch, batches)


def _in_batches(engine: Engine, step: Callable[[Connection], int], batch: int, batches: int) -> int:
    """Run ``step`` (delete up to ``batch`` rows) in its own transaction until it deletes
    fewer than ``batch`` or ran ``batches`` times."""
    total = 0
    for _ in range(batches):
        with engine.begin() as conn:
            deleted = step(conn)
        total += deleted
        if deleted < batch:
            break
    return total
