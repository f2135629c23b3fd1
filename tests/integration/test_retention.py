"""Retention deletes only what it should: audit rows of jobs that ended before the window,
finished webhook events past theirs; in bounded batches; on SQLite and Postgres."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

from sqlalchemy import func, insert, select, update

from contact_import.domain.job import JobStatus
from contact_import.domain.webhooks import EventStatus
from contact_import.runner.retention import Retention
from contact_import.runtime import Runtime
from contact_import.store.schema import imported_contacts, jobs, webhook_attempts, webhook_events
from contact_import.store.webhooks import enqueue_event

NOW = datetime.now(UTC)


def _job(rt: Runtime, user: str, status: JobStatus, ended_days_ago: float | None) -> UUID:
    """A job with five audit rows, in ``status``, ended that many days ago."""
    job, _ = rt.jobs.create(user, "google")
    values: dict[str, object] = {"status": status.value}
    if ended_days_ago is not None:
        values["completed_at"] = NOW - timedelta(days=ended_days_ago)
    rows = [
        {"import_job_id": job.id, "provider_contact_id": f"people/c{i}", "action": "created",
         "created_at": NOW - timedelta(days=200)}
        for i in range(5)
    ]  # fmt: skip
    with rt.engine.begin() as conn:
        conn.execute(update(jobs).where(jobs.c.id == job.id).values(values))
        conn.execute(insert(imported_contacts), rows)
    return job.id


def _audit_rows(rt: Runtime) -> dict[UUID, int]:
    ic = imported_contacts.c
    stmt = select(ic.import_job_id, func.count()).group_by(ic.import_job_id)
    with rt.engine.connect() as conn:
        return {job_id: n for job_id, n in conn.execute(stmt)}


def _event(rt: Runtime, status: EventStatus, days_ago: float) -> str:
    at = NOW - timedelta(days=days_ago)
    with rt.engine.begin() as conn:
        event_id = enqueue_event(conn, "import.completed", {"n": 1}, None, now=at)
        delivered = at if status is EventStatus.DELIVERED else None
        conn.execute(
            update(webhook_events)
            .where(webhook_events.c.id == event_id)
            .values(status=status.value, delivered_at=delivered)
        )
        conn.execute(
            insert(webhook_attempts).values(
                id=uuid4(), event_id=event_id, attempted_at=at,
                status_code=200, duration_ms=3,
            )
        )  # fmt: skip
    return event_id


def _left(rt: Runtime) -> tuple[set[str], set[str]]:
    with rt.engine.connect() as conn:
        events = set(conn.execute(select(webhook_events.c.id)).scalars())
        attempts = set(conn.execute(select(webhook_attempts.c.event_id)).scalars())
    return events, attempts


def test_audit_rows_go_only_for_jobs_that_ended_before_the_window(runtime: Runtime) -> None:
    old_done = _job(runtime, "a", JobStatus.COMPLETED, ended_days_ago=120)
    old_failed = _job(runtime, "b", JobStatus.FAILED, ended_days_ago=91)
    old_cancelled = _job(runtime, "c", JobStatus.CANCELLED, ended_days_ago=100)
    recent = _job(runtime, "d", JobStatus.COMPLETED, ended_days_ago=89)
    active = _job(runtime, "e", JobStatus.PROCESSING, ended_days_ago=None)
    waiting = _job(runtime, "f", JobStatus.FETCHING, ended_days_ago=None)
    retention = Retention(
        runtime.engine, runtime.metrics, audit_days=90, webhook_days=0, batch=4, batches=2,
        clock=lambda: NOW,
    )  # fmt: skip

    first = retention.run()
    assert first.audit_rows == 8  # bounded: two statements of four rows
    assert retention.run().audit_rows == 7
    assert retention.run().audit_rows == 0
    left = _audit_rows(runtime)
    assert left == {recent: 5, active: 5, waiting: 5}
    assert not {old_done, old_failed, old_cancelled} & set(left)
    assert {j.id for j in runtime.jobs.list_jobs()} >= {old_done, old_failed, recent}  # jobs stay
    sample = runtime.metrics.registry.get_sample_value
    assert sample("contact_import_retention_deleted_total", {"table": "imported_contacts"}) == 15


def test_zero_days_keeps_everything(runtime: Runtime) -> None:
    ancient = _job(runtime, "g", JobStatus.COMPLETED, ended_days_ago=3650)
    _event(runtime, EventStatus.DELIVERED, days_ago=3650)
    keep = Retention(runtime.engine, runtime.metrics, audit_days=0, webhook_days=0)
    assert keep.run() == (0, 0)
    assert _audit_rows(runtime) == {ancient: 5}
    assert len(_left(runtime)[0]) == 1


def test_finished_webhook_events_and_their_attempts_go_after_their_window(
    runtime: Runtime,
) -> None:
    old_delivered = _event(runtime, EventStatus.DELIVERED, days_ago=8)
    old_gave_up = _event(runtime, EventStatus.GAVE_UP, days_ago=9)
    new_delivered = _event(runtime, EventStatus.DELIVERED, days_ago=6)
    old_pending = _event(runtime, EventStatus.PENDING, days_ago=30)  # never delivered: kept
    retention = Retention(
        runtime.engine, runtime.metrics, audit_days=90, webhook_days=7, clock=lambda: NOW
    )
    assert retention.run().webhook_events == 2
    events, attempts = _left(runtime)
    assert events == attempts == {new_delivered, old_pending}
    assert old_delivered not in events
    assert old_gave_up not in events


def test_a_worker_prunes_now_and_then_not_on_every_pass(runtime: Runtime) -> None:
    ticks = iter([0.0, 10.0, 61.0])
    retention = Retention(
        runtime.engine, runtime.metrics, audit_days=90, webhook_days=7, every_seconds=60,
        clock=lambda: NOW, monotonic=lambda: next(ticks),
    )  # fmt: skip
    _job(runtime, "h", JobStatus.COMPLETED, ended_days_ago=100)
    assert retention.run_now_and_then() == (5, 0)
    _job(runtime, "i", JobStatus.COMPLETED, ended_days_ago=100)
    assert retention.run_now_and_then() is None
    assert retention.run_now_and_then() == (5, 0)
