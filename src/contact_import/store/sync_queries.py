"""The statement continuous sync runs: queue an incremental import of every account due.

Kept apart from ``job_queries`` (the queue's own statements) because it reads grants too;
``JobStore.queue_syncs`` runs it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Insert,
    and_,
    func,
    literal,
    literal_column,
    or_,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite

from contact_import.domain.job import ACTIVE_STATUSES, JobStatus
from contact_import.store.db import is_postgres
from contact_import.store.job_rows import db_now
from contact_import.store.schema import ACTIVE_SQL, jobs, provider_grants

__all__ = ["queue_due_syncs"]

_ACTIVE = [s.value for s in ACTIVE_STATUSES]


def _new_uuid(conn: Connection) -> ColumnElement[Any]:
    """A random UUID made by the database, in the form the ``Uuid`` column stores it."""
    if is_postgres(conn):
        return func.gen_random_uuid()
    return func.lower(func.hex(func.randomblob(16)))  # SQLite stores a Uuid as 32 hex digits


def queue_due_syncs(conn: Connection, interval_seconds: float, max_attempts: int) -> Insert:
    """Continuous sync: ONE statement queues an incremental import (``trigger`` sync) for
    every active grant whose last complete listing (or, never listed, its connection) is
    older than the interval and whose (user, provider) has no active job; RETURNING the ids.

    Safe under concurrent ticks and workers: the NOT EXISTS skips what is visibly active, and
    the partial unique index (the same ON CONFLICT as ``insert_job``) turns a racing second
    insert into nothing. A revoked or refresh_failed grant is never picked.
    """
    g, now, cutoff = provider_grants.c, db_now(conn), db_now(conn, -interval_seconds)
    due = select(
        _new_uuid(conn), g.user_id, g.provider, g.id,
        literal(JobStatus.FETCHING.value), literal("sync"), literal(max_attempts),
        now, now, now,
    ).where(
        # A literal, not a bound parameter: a prepared statement's generic plan must still
        # match the partial index's predicate (ACTIVE_GRANT_SQL).
        g.status == literal_column("'active'"),
        or_(g.access_token_enc.is_not(None), g.refresh_token_enc.is_not(None)),
        # Not COALESCE(...): two plain comparisons let the partial index serve the scan.
        or_(
            g.last_synced_at <= cutoff,
            and_(g.last_synced_at.is_(None), g.created_at <= cutoff),
        ),
        ~select(jobs.c.id).where(_active_job_of(g.user_id, g.provider)).exists(),
        # A sync that failed (or was cancelled) inside the interval waits out the interval
        # too: it moved no last_synced_at, and must not be queued again on every tick.
        ~select(jobs.c.id).where(_sync_ended_since(g.user_id, g.provider, cutoff)).exists(),
    )  # fmt: skip
    if is_postgres(conn):
        # A grant a disconnect (or a refresh) holds is skipped, not waited for: a sync must
        # not be queued for a grant whose tokens are being forgotten under it.
        due = due.with_for_update(of=provider_grants, skip_locked=True)
    columns = [
        "id", "user_id", "provider", "grant_id", "status", "trigger", "max_attempts",
        "run_after", "started_at", "updated_at",
    ]  # fmt: skip
    insert = postgresql.insert if is_postgres(conn) else sqlite.insert
    return (
        insert(jobs)
        .from_select(columns, due)
        .on_conflict_do_nothing(
            index_elements=["user_id", "provider"], index_where=text(ACTIVE_SQL)
        )
        .returning(jobs.c.id)
    )


def _sync_ended_since(user_id: Any, provider: Any, cutoff: Any) -> ColumnElement[bool]:
    c = jobs.c
    return and_(
        c.user_id == user_id, c.provider == provider, c.trigger == literal_column("'sync'"),
        c.completed_at > cutoff,
    )  # fmt: skip


def _active_job_of(user_id: Any, provider: Any) -> ColumnElement[bool]:
    return and_(jobs.c.user_id == user_id, jobs.c.provider == provider, jobs.c.status.in_(_ACTIVE))
