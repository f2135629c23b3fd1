"""Every statement of the job queue, named, with why it is safe under concurrency.

This is the queue's ``queries.sql`` (as procrastinate keeps one): each function builds one
statement and runs nothing; ``JobStore`` (store/jobs.py) runs them, one transaction per
operation, and turns rows into ``Job``. The statements are SQLAlchemy Core so that one text
serves Postgres and SQLite; ``conn`` is passed only where the clock (``db_now``) or the
dialect decides something.

Every write to a claimed job is fenced by its ``Lease`` (``locked_by`` AND ``attempts``): a
fenced UPDATE that matches zero rows means the lease was lost, and the caller must stop.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    CTE,
    ColumnElement,
    Connection,
    Insert,
    Select,
    Update,
    and_,
    case,
    func,
    literal,
    or_,
    select,
    text,
)
from sqlalchemy import update as sql_update
from sqlalchemy.dialects import postgresql, sqlite

from contact_import.domain.job import ACTIVE_STATUSES, JobStatus
from contact_import.store.db import is_postgres
from contact_import.store.job_rows import Checkpoint, Lease, db_now
from contact_import.store.schema import ACTIVE_SQL, jobs

__all__ = [
    "ONE_ACTIVE_INDEX",
    "cancel_if_unheld",
    "cancelled_if_requested",
    "checkpoint_job",
    "claim_jobs",
    "fenced_update",
    "final_values",
    "flag_cancel",
    "insert_job",
    "list_jobs",
    "queue_stats",
    "reap_cancelled",
    "reap_gave_up",
    "release_values",
    "requeue_job",
    "running_job_id",
    "select_active",
    "select_job",
    "stuck_jobs",
]

# The partial unique index "one active job per (user, provider)" (see schema.py).
ONE_ACTIVE_INDEX = "uq_contact_import_jobs_one_active"
_ACTIVE = [s.value for s in ACTIVE_STATUSES]
_RETRYABLE = [JobStatus.FAILED.value, JobStatus.CANCELLED.value]
_CANCELLED_BY_USER = "cancelled by the user"
_GAVE_UP = (
    "gave up: the import stopped without finishing on every attempt (worker crashed or timed out)"
)

Values = dict[str, Any]

# -- conditions ---------------------------------------------------------------------------


def _runnable(now: ColumnElement[datetime]) -> ColumnElement[bool]:
    """A job a claim may take now: active, due, not leased or its lease expired (a crashed
    worker's job), attempts left, no cancel pending."""
    return and_(
        jobs.c.status.in_(_ACTIVE),
        jobs.c.run_after <= now,
        or_(jobs.c.locked_by.is_(None), jobs.c.lease_expires_at < now),
        jobs.c.attempts < jobs.c.max_attempts,
        jobs.c.cancel_requested.is_(False),
    )


def _unheld(now: ColumnElement[datetime]) -> ColumnElement[bool]:
    """No live worker holds the job: never leased, released, or its lease expired."""
    return or_(jobs.c.locked_by.is_(None), jobs.c.lease_expires_at < now)


def _active_of(table: Any, user_id: Any, provider: Any) -> ColumnElement[bool]:
    """``table``'s active jobs of (user, provider): values or correlated columns."""
    return and_(
        table.c.user_id == user_id, table.c.provider == provider, table.c.status.in_(_ACTIVE)
    )


# -- column values ------------------------------------------------------------------------


def final_values(conn: Connection, status: JobStatus, error: str | None) -> Values:
    """A job that ends: its status and reason, and no lease any more."""
    return {
        "status": status.value,
        "error_message": error,
        "completed_at": db_now(conn),
        "updated_at": db_now(conn),
        "locked_by": None,
        "lease_expires_at": None,
    }


def cancelled_if_requested(error: str | None) -> Values:
    """A failing job's status and reason, unless its cancel was requested: then cancelled."""
    requested = jobs.c.cancel_requested.is_(True)
    return {
        "status": case((requested, JobStatus.CANCELLED.value), else_=JobStatus.FAILED.value),
        "error_message": case((requested, _CANCELLED_BY_USER), else_=literal(error)),
    }


def release_values(conn: Connection, *, delay: float, refund: bool, error: str | None) -> Values:
    """A job given back to the queue, runnable after ``delay`` seconds.

    ``refund`` returns the attempt: a job that stopped cleanly at a page boundary (budget
    spent, worker shutting down) has not failed, so a long import resumed over many ticks
    does not run out of attempts.
    """
    values: Values = {"locked_by": None, "lease_expires_at": None, "run_after": db_now(conn, delay)}
    if refund:
        values["attempts"] = jobs.c.attempts - 1
    if error is not None:
        values["error_message"] = error
    return values


def _requeued_values(conn: Connection) -> Values:
    """A retried job: queued now, fresh attempts, its cursor and counts kept."""
    now = db_now(conn)
    return {
        "status": JobStatus.FETCHING.value,
        "attempts": 0,
        "error_message": None,
        "cancel_requested": False,
        "completed_at": None,
        "run_after": now,
        "updated_at": now,
        "locked_by": None,
        "lease_expires_at": None,
    }


# -- creating and reading -----------------------------------------------------------------


def insert_job(conn: Connection, values: Values) -> Insert:
    """Queue a job unless (user, provider) has an active one; RETURNING the row if inserted.

    The partial unique index decides, not a prior SELECT, so two concurrent starts still
    produce one job: the loser inserts nothing and reads the winner's (``select_active``).
    """
    insert = postgresql.insert if is_postgres(conn) else sqlite.insert
    return (
        insert(jobs)
        .values(values)
        .on_conflict_do_nothing(
            index_elements=["user_id", "provider"],
            # Literal text: a bound parameter here would stop Postgres from matching the
            # partial index once psycopg prepares the statement.
            index_where=text(ACTIVE_SQL),
        )
        .returning(*jobs.c)
    )


def select_active(user_id: str, provider: str) -> Select[Any]:
    return select(jobs).where(_active_of(jobs, user_id, provider))


def select_job(job_id: UUID, user_id: str | None, *, for_update: bool = False) -> Select[Any]:
    """The job (only if it is ``user_id``'s, when given); ``for_update`` locks its row."""
    stmt = select(jobs).where(jobs.c.id == job_id)
    if user_id is not None:
        stmt = stmt.where(jobs.c.user_id == user_id)
    return stmt.with_for_update() if for_update else stmt


def list_jobs(user_id: str | None, statuses: Sequence[str], limit: int) -> Select[Any]:
    stmt = select(jobs).order_by(jobs.c.started_at.desc(), jobs.c.id).limit(limit)
    if user_id is not None:
        stmt = stmt.where(jobs.c.user_id == user_id)
    if statuses:
        stmt = stmt.where(jobs.c.status.in_(list(statuses)))
    return stmt


def stuck_jobs(conn: Connection, waiting_seconds: float) -> Select[Any]:
    """Active jobs whose lease expired, or that have waited to run for too long."""
    now, old = db_now(conn), db_now(conn, -waiting_seconds)
    waited_too_long = and_(jobs.c.locked_by.is_(None), jobs.c.run_after < old)
    return (
        select(jobs)
        .where(jobs.c.status.in_(_ACTIVE))
        .where(or_(jobs.c.lease_expires_at < now, waited_too_long))
        .order_by(jobs.c.started_at)
    )


def queue_stats(conn: Connection) -> Select[Any]:
    """Jobs by status, runnable jobs and the earliest due time, in one GROUP BY (with ``now``
    from the same clock, so the wait is measured on the database's time)."""
    now = db_now(conn)
    runnable = _runnable(now)
    return select(
        jobs.c.status,
        func.count().label("total"),
        func.count().filter(runnable).label("runnable"),
        func.min(jobs.c.run_after).filter(runnable).label("waiting_since"),
        now.label("now"),
    ).group_by(jobs.c.status)


# -- the queue: claim, reclaim, checkpoint, reap ------------------------------------------


def _pick_runnable(
    now: ColumnElement[datetime], limit: int, only: UUID | None, exclude: Sequence[UUID]
) -> CTE:
    """The jobs one claim takes, oldest due first, skipping rows another claim holds;
    ``only`` that one job (if runnable), never those in ``exclude``."""
    chosen = [] if only is None else [jobs.c.id == only]
    if exclude:
        chosen.append(jobs.c.id.not_in(list(exclude)))
    # MATERIALIZED: evaluated once, before the update, so ``reclaimed`` reports each row as
    # it was (leased by a dead worker or not).
    return (
        select(jobs.c.id.label("job_id"), jobs.c.locked_by.is_not(None).label("reclaimed"))
        .where(_runnable(now), *chosen)
        .order_by(jobs.c.run_after, jobs.c.started_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .cte("picked")
        .prefix_with("MATERIALIZED")
    )


def claim_jobs(
    conn: Connection,
    locked_by: str,
    limit: int,
    lease_seconds: float,
    *,
    only: UUID | None = None,
    exclude: Sequence[UUID] = (),
) -> Update:
    """Claim up to ``limit`` runnable jobs in ONE statement, each under a fresh lease
    (``only``: just that job, the callback's claim-by-id; ``exclude``: never these).

    Reclaiming is the same statement: a crashed worker's job (its lease expired) is runnable,
    and RETURNING says which rows were leased before (``reclaimed``). On Postgres,
    ``FOR UPDATE SKIP LOCKED`` lets concurrent claimers pass over each other's rows instead
    of waiting or double-claiming; on SQLite the whole statement runs under the write lock
    ``BEGIN IMMEDIATE`` takes. ``attempts`` grows here, so a crashed attempt still counts.
    """
    now = db_now(conn)
    picked = _pick_runnable(now, limit, only, exclude)
    # A subquery, not UPDATE … FROM picked: SQLite's RETURNING cannot name a FROM table.
    # ``job_id`` is distinct from ``id`` so the unqualified names SQLite's RETURNING renders
    # still resolve to picked and to the updated row.
    reclaimed = (
        select(picked.c.reclaimed)
        .where(picked.c.job_id == jobs.c.id)
        .scalar_subquery()
        .label("reclaimed")
    )
    return (
        sql_update(jobs)
        .where(jobs.c.id.in_(select(picked.c.job_id)))
        .values(
            status=JobStatus.PROCESSING.value,
            locked_by=locked_by,
            lease_expires_at=db_now(conn, lease_seconds),
            attempts=jobs.c.attempts + 1,
            updated_at=now,
        )
        .returning(*jobs.c, reclaimed)
    )


def checkpoint_job(
    conn: Connection, lease: Lease, step: Checkpoint, lease_seconds: float
) -> Update:
    """Advance cursor and counts and extend the lease, fenced (the caller adds RETURNING: no
    row means the lease was lost).

    The counts are added in SQL (``col + n``), never read and written back, so the page's
    transaction is the only thing that moves them. No ``next_cursor``: that was the last
    page, and the job completes in the same statement, with the total it really returned.
    """
    counts = step.counts
    processed = jobs.c.processed_contacts + counts.processed
    values: Values = {
        "processed_contacts": processed,
        "created_contacts": jobs.c.created_contacts + counts.created,
        "updated_contacts": jobs.c.updated_contacts + counts.updated,
        "imported_contacts": jobs.c.imported_contacts + counts.created + counts.updated,
        "skipped_contacts": jobs.c.skipped_contacts + counts.skipped,
        "failed_contacts": jobs.c.failed_contacts + counts.failed,
        "total_contacts": processed if step.provider_total is None else step.provider_total,
        "pages_done": jobs.c.pages_done + 1,
        "page_cursor": step.next_cursor,
        "lease_expires_at": db_now(conn, lease_seconds),
        "updated_at": db_now(conn),
    }
    if step.next_cursor is None:
        values |= final_values(conn, JobStatus.COMPLETED, None) | {"total_contacts": processed}
    return sql_update(jobs).where(lease.matches()).values(values)


def fenced_update(conn: Connection, lease: Lease, values: Values) -> Update:
    """Any other write to a claimed job (heartbeat, release, finish): zero rows = lease lost."""
    return sql_update(jobs).where(lease.matches()).values({"updated_at": db_now(conn)} | values)


def _expired(now: ColumnElement[datetime]) -> ColumnElement[bool]:
    return and_(jobs.c.status.in_(_ACTIVE), _unheld(now))


def reap_cancelled(conn: Connection) -> Update:
    """Cancel the unheld jobs whose cancel was requested (their worker died before seeing it)."""
    return (
        sql_update(jobs)
        .where(_expired(db_now(conn)), jobs.c.cancel_requested.is_(True))
        .values(final_values(conn, JobStatus.CANCELLED, _CANCELLED_BY_USER))
    )


def reap_gave_up(conn: Connection) -> Update:
    """Fail the unheld jobs with no attempts left: their last attempt died (lease expired).

    A claim never takes them again (``_runnable`` wants attempts left), so without this
    they would stay active forever.
    """
    return (
        sql_update(jobs)
        .where(_expired(db_now(conn)), jobs.c.attempts >= jobs.c.max_attempts)
        .values(final_values(conn, JobStatus.FAILED, _GAVE_UP))
    )


# -- user actions -------------------------------------------------------------------------


def cancel_if_unheld(conn: Connection, job_id: UUID) -> Update:
    """Cancel now if no live worker holds the job (zero rows: one does)."""
    return (
        sql_update(jobs)
        .where(jobs.c.id == job_id, _unheld(db_now(conn)))
        .values(
            final_values(conn, JobStatus.CANCELLED, _CANCELLED_BY_USER) | {"cancel_requested": True}
        )
    )


def flag_cancel(conn: Connection, job_id: UUID) -> Update:
    """Ask the live worker to stop: it sees the flag at its next page (checkpoint's RETURNING)."""
    return (
        sql_update(jobs)
        .where(jobs.c.id == job_id)
        .values(cancel_requested=True, updated_at=db_now(conn))
    )


def requeue_job(conn: Connection, job_id: UUID, user_id: str | None) -> Update:
    """Queue a failed or cancelled job again from its cursor; RETURNING the row if it was.

    ONE conditional UPDATE decides (retryable status, and no other active job for the same
    user and provider), so a retry racing a new start cannot both win. On Postgres the
    NOT EXISTS cannot see a start that has not committed yet; the partial unique index then
    refuses the second active job (``ONE_ACTIVE_INDEX``), which is the same conflict.
    """
    other = jobs.alias("other")
    another_active = select(other.c.id).where(_active_of(other, jobs.c.user_id, jobs.c.provider))
    stmt = (
        sql_update(jobs)
        .where(jobs.c.id == job_id, jobs.c.status.in_(_RETRYABLE))
        .where(~another_active.exists())
        .values(_requeued_values(conn))
        .returning(*jobs.c)
    )
    return stmt if user_id is None else stmt.where(jobs.c.user_id == user_id)


def running_job_id(user_id: str, provider: str) -> Select[Any]:
    return select(jobs.c.id).where(_active_of(jobs, user_id, provider))
