"""The webhook outbox's manager: claim due events, record attempts, list, retry, measure.

Each method owns its transaction. Delivery happens between them, outside any transaction:
``claim_due`` leases events to one deliverer (``locked_by``, ``lease_expires_at``), the
deliverer POSTs them, and ``record_attempt`` writes the outcome fenced by that lease. A
deliverer that dies mid-delivery leaves a lease that expires; the event is then claimed and
sent again with the same id (at least once).

The clock is the deliverer's (``now`` is passed in), so tests move time instead of waiting;
it is the same wall clock that stamped ``created_at`` and ``next_attempt_at``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import CTE, ColumnElement, Engine, and_, func, insert, or_, select, update

from contact_import.domain.webhooks import EventStatus
from contact_import.errors import EventNotFound
from contact_import.store.schema import webhook_attempts, webhook_events

__all__ = ["Attempt", "AttemptRow", "Outbox", "OutboxEvent", "OutboxStats"]

_e = webhook_events.c


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    """A row of ``webhook_events``."""

    id: str
    type: str
    job_id: UUID | None
    payload: str
    created_at: datetime
    next_attempt_at: datetime
    attempts: int
    status: EventStatus
    locked_by: str | None
    lease_expires_at: datetime | None
    delivered_at: datetime | None
    last_error: str | None

    @classmethod
    def from_row(cls, row: Any) -> OutboxEvent:
        data = {f.name: row._mapping[f.name] for f in fields(cls)}
        data["status"] = EventStatus(data["status"])
        return cls(**data)


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one POST got: the receiver's status (None: no answer) and why it failed."""

    status_code: int | None
    duration_ms: int
    error: str | None = None


@dataclass(frozen=True, slots=True)
class AttemptRow:
    attempted_at: datetime
    status_code: int | None
    duration_ms: int
    error: str | None


@dataclass(frozen=True, slots=True)
class OutboxStats:
    """Pending events, and how long the oldest one has waited (0 when none)."""

    depth: int
    oldest_pending_seconds: float


def _claimable(now: datetime) -> ColumnElement[bool]:
    """Pending, due, not held by a live deliverer, and no earlier event of the same job is
    still pending (order per job: event 2 waits until event 1 is delivered or given up)."""
    earlier = webhook_events.alias("earlier")
    before = or_(
        earlier.c.created_at < _e.created_at,
        and_(earlier.c.created_at == _e.created_at, earlier.c.id < _e.id),
    )
    earlier_pending = select(earlier.c.id).where(
        earlier.c.job_id == _e.job_id, earlier.c.status == EventStatus.PENDING.value, before
    )
    return and_(
        _e.status == EventStatus.PENDING.value,
        _e.next_attempt_at <= now,
        or_(_e.locked_by.is_(None), _e.lease_expires_at < now),
        ~earlier_pending.exists(),
    )


def _pick_due(now: datetime, limit: int) -> CTE:
    """The events one claim takes, oldest due first, skipping rows another claim holds."""
    return (
        select(_e.id.label("event_id"))
        .where(_claimable(now))
        .order_by(_e.next_attempt_at, _e.created_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .cte("due")
        .prefix_with("MATERIALIZED")
    )


class Outbox:
    """The outbox's operations, each in its own transaction."""

    def __init__(self, engine: Engine, *, lease_seconds: float) -> None:
        self.engine = engine
        self.lease_seconds = lease_seconds

    def claim_due(self, deliverer: str, limit: int, now: datetime) -> list[OutboxEvent]:
        """Lease up to ``limit`` due events to ``deliverer`` in ONE statement.

        As the job claim: ``FOR UPDATE SKIP LOCKED`` on Postgres lets concurrent deliverers
        pass over each other's rows; on SQLite the statement runs under ``BEGIN IMMEDIATE``'s
        write lock. An expired lease is claimable again: its deliverer died.
        """
        due = _pick_due(now, limit)
        lease_ends = now + timedelta(seconds=self.lease_seconds)
        stmt = (
            update(webhook_events)
            .where(_e.id.in_(select(due.c.event_id)))
            .values(locked_by=deliverer, lease_expires_at=lease_ends)
            .returning(*_e)
        )
        with self.engine.begin() as conn:
            rows = conn.execute(stmt).all()
        return sorted((OutboxEvent.from_row(r) for r in rows), key=lambda e: e.next_attempt_at)

    def record_attempt(
        self, event: OutboxEvent, attempt: Attempt, *, now: datetime, retry_at: datetime | None
    ) -> bool:
        """Record the attempt and settle the event: delivered (a 2xx), due again at
        ``retry_at``, or given up (``retry_at`` None). False: the lease was lost meanwhile
        (another deliverer has it now); the attempt is recorded all the same."""
        with self.engine.begin() as conn:
            conn.execute(
                insert(webhook_attempts).values(
                    id=uuid4(), event_id=event.id, attempted_at=now,
                    status_code=attempt.status_code, duration_ms=attempt.duration_ms,
                    error=attempt.error,
                )
            )  # fmt: skip
            fenced = and_(_e.id == event.id, _e.locked_by == event.locked_by)
            values = _settled(attempt, now, retry_at)
            return bool(conn.execute(update(webhook_events).where(fenced).values(values)).rowcount)

    def get(self, event_id: str) -> OutboxEvent:
        with self.engine.connect() as conn:
            row = conn.execute(select(webhook_events).where(_e.id == event_id)).first()
        if row is None:
            raise EventNotFound(f"no webhook event {event_id}")
        return OutboxEvent.from_row(row)

    def with_id_prefix(self, prefix: str, limit: int) -> list[OutboxEvent]:
        """Events whose id starts with ``prefix`` (an operator's command: a scan)."""
        stmt = select(webhook_events).where(_e.id.startswith(prefix, autoescape=True)).limit(limit)
        with self.engine.connect() as conn:
            return [OutboxEvent.from_row(row) for row in conn.execute(stmt)]

    def list_events(self, *, failed_only: bool = False, limit: int = 50) -> list[OutboxEvent]:
        """Newest first; ``failed_only``: given up, or pending after a failed attempt."""
        stmt = select(webhook_events).order_by(_e.created_at.desc(), _e.id).limit(limit)
        if failed_only:
            stmt = stmt.where(
                or_(
                    _e.status == EventStatus.GAVE_UP.value,
                    and_(_e.status == EventStatus.PENDING.value, _e.attempts > 0),
                )
            )
        with self.engine.connect() as conn:
            return [OutboxEvent.from_row(r) for r in conn.execute(stmt)]

    def attempts_of(self, event_id: str) -> list[AttemptRow]:
        a = webhook_attempts.c
        stmt = select(a.attempted_at, a.status_code, a.duration_ms, a.error).where(
            a.event_id == event_id
        )
        with self.engine.connect() as conn:
            return [AttemptRow(*r) for r in conn.execute(stmt.order_by(a.attempted_at))]

    def retry(self, event_id: str, now: datetime) -> OutboxEvent:
        """Make a given-up or pending event due now (its lease, if any, is left alone)."""
        retryable = [EventStatus.PENDING.value, EventStatus.GAVE_UP.value]
        stmt = (
            update(webhook_events)
            .where(_e.id == event_id, _e.status.in_(retryable))
            .values(status=EventStatus.PENDING.value, next_attempt_at=now)
            .returning(*_e)
        )
        with self.engine.begin() as conn:
            row = conn.execute(stmt).first()
        if row is not None:
            return OutboxEvent.from_row(row)
        event = self.get(event_id)  # raises EventNotFound
        raise EventNotFound(f"webhook event {event_id} is already {event.status.value}")

    def stats(self, now: datetime) -> OutboxStats:
        """For the scrape-time gauges: pending events and the oldest one's age."""
        pending = _e.status == EventStatus.PENDING.value
        stmt = select(func.count(), func.min(_e.created_at)).where(pending)
        with self.engine.connect() as conn:
            depth, oldest = conn.execute(stmt).one()
        age = (now - oldest).total_seconds() if oldest is not None else 0.0
        return OutboxStats(depth=int(depth), oldest_pending_seconds=max(0.0, age))


def _settled(attempt: Attempt, now: datetime, retry_at: datetime | None) -> dict[str, Any]:
    values: dict[str, Any] = {
        "attempts": _e.attempts + 1,
        "locked_by": None,
        "lease_expires_at": None,
        "last_error": attempt.error,
    }
    if attempt.error is None:
        return values | {"status": EventStatus.DELIVERED.value, "delivered_at": now}
    if retry_at is None:
        return values | {"status": EventStatus.GAVE_UP.value}
    return values | {"next_attempt_at": retry_at}
