"""Writing webhook events into the outbox, inside the caller's transaction.

An event is a row of ``webhook_events`` written in the same transaction as the fact it
reports (a job's final state, a revoked connection), so a crash can delay its delivery but
never lose it, and a rolled-back end emits nothing. ``store.outbox`` hands the rows to the
deliverers (runner/webhooks.py).

Other features call ``enqueue_event`` for their own events (``connection.revoked``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import Connection, insert

from contact_import.domain.webhooks import EventStatus, EventType, job_event_type
from contact_import.store.db import dumps_json
from contact_import.store.job_rows import Job, job_fields
from contact_import.store.schema import webhook_events

__all__ = ["enqueue_event", "event_body", "job_document", "new_event_id", "record_job_ends"]


def new_event_id() -> str:
    """A ``webhook-id``: ``msg_`` and 32 hex digits, unique per event, kept on every attempt."""
    return f"msg_{uuid4().hex}"


def _json_ready(value: Any) -> Any:
    """UUIDs and datetimes as the API's JSON writes them (pydantic: ISO 8601, UTC as ``Z``)."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, UUID):
        return str(value)
    return value


def job_document(job: Job) -> dict[str, Any]:
    """The job exactly as ``GET …/status/{job_id}`` answers it, and whose it is (``user_id``:
    the receiver has no user's JWT to ask with)."""
    document = {name: _json_ready(value) for name, value in job_fields(job).items()}
    return document | {"user_id": job.user_id}


def event_body(event_type: str, data: Mapping[str, Any], at: datetime) -> str:
    """The body every attempt sends: ``{"type", "timestamp", "data"}``."""
    return dumps_json({"type": event_type, "timestamp": _json_ready(at), "data": dict(data)})


def enqueue_event(
    conn: Connection,
    event_type: EventType | str,
    data: Mapping[str, Any],
    job_id: UUID | None = None,
    *,
    now: datetime | None = None,
) -> str:
    """Put an event in the outbox inside the caller's transaction, due now; its id.

    Events of one ``job_id`` are delivered in the order they were enqueued. Call it only
    when webhooks are on (``Settings.webhook_url`` set, ``JobStore.webhooks``): nothing
    delivers, or deletes, the events of a deployment without a WEBHOOK_URL.
    """
    at = now or datetime.now(UTC)
    event_id = new_event_id()
    conn.execute(
        insert(webhook_events).values(
            id=event_id,
            type=str(event_type),
            job_id=job_id,
            payload=event_body(str(event_type), data, at),
            created_at=at,
            next_attempt_at=at,
            status=EventStatus.PENDING.value,
        )
    )
    return event_id


def record_job_ends(conn: Connection, ended: Iterable[Job]) -> int:
    """An ``import.*`` event for each job that just ended, in the transaction that ended it."""
    count = 0
    for job in ended:
        event_type = job_event_type(job.status)
        if event_type is not None:
            enqueue_event(conn, event_type, job_document(job), job.id)
            count += 1
    return count
