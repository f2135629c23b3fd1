"""All job SQL: create, claim, lease, checkpoint, release, finish, cancel, retry.

Every write to a claimed job is fenced by its ``Lease``: ``locked_by`` (unique per claim) and
``attempts``. An UPDATE that matches zero rows means the lease was lost (it expired and another
worker claimed the job): the caller must stop and write nothing more.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import ColumnElement, Connection, Engine, and_, func, or_, select, text
from sqlalchemy import update as sql_update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from contact_import.domain.job import ACTIVE_STATUSES, JobStatus
from contact_import.errors import JobError, JobNotFound, JobStateConflict, LeaseLost
from contact_import.metrics import FailureReason, Metrics
from contact_import.store.db import is_postgres
from contact_import.store.job_rows import (
    Job,
    Lease,
    PageCounts,
    QueueStats,
    db_now,
    new_worker_name,
)
from contact_import.store.schema import ACTIVE_SQL, imported_contacts, jobs

__all__ = [
    "NOTIFY_CHANNEL",
    "Job",
    "JobStore",
    "Lease",
    "PageCounts",
    "QueueStats",
    "checkpoint",
    "new_worker_name",
]

NOTIFY_CHANNEL = "contact_import_jobs"
_ACTIVE = [s.value for s in ACTIVE_STATUSES]
_RETRYABLE = [JobStatus.FAILED.value, JobStatus.CANCELLED.value]
_ONE_ACTIVE_INDEX = "uq_contact_import_jobs_one_active"


def checkpoint(
    conn: Connection,
    lease: Lease,
    counts: PageCounts,
    *,
    next_cursor: str | None,
    provider_total: int | None,
    lease_seconds: float,
) -> bool:
    """Advance cursor and counts and extend the lease, inside the page's transaction.

    ``next_cursor`` None means that was the last page: the job completes in the same
    transaction as its last contacts. Returns ``cancel_requested``; raises LeaseLost.
    """
    processed = jobs.c.processed_contacts + counts.processed
    values: dict[str, Any] = {
        "processed_contacts": processed,
        "created_contacts": jobs.c.created_contacts + counts.created,
        "updated_contacts": jobs.c.updated_contacts + counts.updated,
        "imported_contacts": jobs.c.imported_contacts + counts.created + counts.updated,
        "skipped_contacts": jobs.c.skipped_contacts + counts.skipped,
        "failed_contacts": jobs.c.failed_contacts + counts.failed,
        "total_contacts": processed if provider_total is None else provider_total,
        "pages_done": jobs.c.pages_done + 1,
        "page_cursor": next_cursor,
        "lease_expires_at": db_now(conn, lease_seconds),
        "updated_at": db_now(conn),
    }
    if next_cursor is None:
        # At completion the total is what the provider really returned.
        values |= _final_values(conn, JobStatus.COMPLETED, None) | {"total_contacts": processed}
    stmt = sql_update(jobs).where(lease.matches()).values(values).returning(jobs.c.cancel_requested)
    cancel = conn.execute(stmt).scalar_one_or_none()
    if cancel is None:
        raise LeaseLost(f"lost the lease on job {lease.job_id}")
    return bool(cancel)


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


def _final_values(conn: Connection, status: JobStatus, error: str | None) -> dict[str, Any]:
    return {
        "status": status.value,
        "error_message": error,
        "completed_at": db_now(conn),
        "updated_at": db_now(conn),
        "locked_by": None,
        "lease_expires_at": None,
    }


def _notify(conn: Connection, job_id: UUID) -> None:
    if is_postgres(conn):
        conn.execute(
            text("SELECT pg_notify(:channel, :payload)"),
            {"channel": NOTIFY_CHANNEL, "payload": str(job_id)},
        )


def _requeued_values(conn: Connection) -> dict[str, Any]:
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


def _is_one_active_violation(exc: IntegrityError) -> bool:
    """The partial unique index "one active job per (user, provider)" refused the write."""
    constraint = getattr(getattr(exc.orig, "diag", None), "constraint_name", None)
    if constraint is not None:  # psycopg names it
        return bool(constraint == _ONE_ACTIVE_INDEX)
    # sqlite3 names the columns instead: "UNIQUE constraint failed: t.user_id, t.provider"
    message = str(exc.orig)
    return "UNIQUE" in message and "user_id" in message and "provider" in message


def _active_of(table: Any, user_id: Any, provider: Any) -> ColumnElement[bool]:
    """``table``'s active jobs of (user, provider): values or correlated columns."""
    return and_(
        table.c.user_id == user_id, table.c.provider == provider, table.c.status.in_(_ACTIVE)
    )


class JobStore:
    """Job operations, each in its own transaction."""

    def __init__(
        self,
        engine: Engine,
        *,
        lease_seconds: float,
        max_attempts: int = 5,
        metrics: Metrics | None = None,
    ) -> None:
        self.engine = engine
        self.lease_seconds = lease_seconds
        self.max_attempts = max_attempts
        self.metrics = metrics or Metrics()

    # -- creating and reading -------------------------------------------------------------

    def create(self, user_id: str, provider: str, grant_id: UUID | None = None) -> tuple[Job, bool]:
        """Queue a job as ``fetching``; if one is active for (user, provider), return that one.

        Returns (job, created). The partial unique index decides, not a prior SELECT, so two
        concurrent starts still produce one job.
        """
        with self.engine.begin() as conn:
            now = db_now(conn)
            values = {
                "id": uuid4(), "user_id": user_id, "provider": provider, "grant_id": grant_id,
                "status": JobStatus.FETCHING.value, "max_attempts": self.max_attempts,
                "run_after": now, "started_at": now, "updated_at": now,
            }  # fmt: skip
            insert = postgresql.insert if is_postgres(conn) else sqlite.insert
            stmt = (
                insert(jobs)
                .values(values)
                .on_conflict_do_nothing(
                    index_elements=["user_id", "provider"],
                    # Literal text: a bound parameter here would stop Postgres from matching
                    # the partial index once psycopg prepares the statement.
                    index_where=text(ACTIVE_SQL),
                )
                .returning(*jobs.c)
            )
            row = conn.execute(stmt).first()
            if row is not None:
                _notify(conn, row.id)
                return Job.from_row(row), True
            existing = conn.execute(
                select(jobs).where(
                    jobs.c.user_id == user_id,
                    jobs.c.provider == provider,
                    jobs.c.status.in_(_ACTIVE),
                )
            ).one()
            return Job.from_row(existing), False

    def get(self, job_id: UUID, user_id: str | None = None) -> Job:
        """The job; JobNotFound when it does not exist or (with ``user_id``) is someone else's."""
        stmt = select(jobs).where(jobs.c.id == job_id)
        if user_id is not None:
            stmt = stmt.where(jobs.c.user_id == user_id)
        with self.engine.connect() as conn:
            row = conn.execute(stmt).first()
        if row is None:
            raise JobNotFound(f"no import job {job_id}")
        return Job.from_row(row)

    def list_jobs(
        self, *, user_id: str | None = None, statuses: Sequence[str] = (), limit: int = 50
    ) -> list[Job]:
        stmt = select(jobs).order_by(jobs.c.started_at.desc(), jobs.c.id).limit(limit)
        if user_id is not None:
            stmt = stmt.where(jobs.c.user_id == user_id)
        if statuses:
            stmt = stmt.where(jobs.c.status.in_(list(statuses)))
        with self.engine.connect() as conn:
            return [Job.from_row(r) for r in conn.execute(stmt)]

    def action_counts(self, job_id: UUID) -> dict[str, int]:
        """The original's audit query: how many contacts took each action in this job."""
        ic = imported_contacts.c
        stmt = select(ic.action, func.count()).where(ic.import_job_id == job_id).group_by(ic.action)
        with self.engine.connect() as conn:
            return {action: count for action, count in conn.execute(stmt)}

    def stuck(self, *, waiting_seconds: float = 300.0) -> list[Job]:
        """Active jobs whose lease expired, or that have waited to run for too long."""
        with self.engine.connect() as conn:
            now, old = db_now(conn), db_now(conn, -waiting_seconds)
            stmt = (
                select(jobs)
                .where(jobs.c.status.in_(_ACTIVE))
                .where(
                    or_(
                        jobs.c.lease_expires_at < now,
                        and_(jobs.c.locked_by.is_(None), jobs.c.run_after < old),
                    )
                )
                .order_by(jobs.c.started_at)
            )
            return [Job.from_row(r) for r in conn.execute(stmt)]

    # -- the queue ------------------------------------------------------------------------

    def claim(self, worker: str, limit: int) -> list[Job]:
        """Claim up to ``limit`` runnable jobs in ONE statement, each under a fresh lease.

        Runnable: see ``_runnable``; a crashed worker's job (lease expired) is reclaimed here.
        On Postgres, ``FOR UPDATE SKIP LOCKED`` lets concurrent claimers pass over each other's
        rows instead of waiting or double-claiming; on SQLite the whole statement runs under
        the write lock ``BEGIN IMMEDIATE`` takes. ``attempts`` grows here, so a crashed attempt
        still counts.
        """
        locked_by = f"{worker}/{secrets.token_hex(4)}"
        with self.engine.begin() as conn:
            now = db_now(conn)
            # MATERIALIZED: evaluated once, before the update, so ``reclaimed`` reports each
            # row as it was (leased by a dead worker or not).
            picked = (
                select(jobs.c.id.label("job_id"), jobs.c.locked_by.is_not(None).label("reclaimed"))
                .where(_runnable(now))
                .order_by(jobs.c.run_after, jobs.c.started_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
                .cte("picked")
                .prefix_with("MATERIALIZED")
            )
            # A subquery, not UPDATE … FROM picked: SQLite's RETURNING cannot name a FROM
            # table. ``job_id`` is distinct from ``id`` so the unqualified names SQLite's
            # RETURNING renders still resolve to picked and to the updated row.
            reclaimed = (
                select(picked.c.reclaimed)
                .where(picked.c.job_id == jobs.c.id)
                .scalar_subquery()
                .label("reclaimed")
            )
            stmt = (
                sql_update(jobs)
                .where(jobs.c.id.in_(select(picked.c.job_id)))
                .values(
                    status=JobStatus.PROCESSING.value,
                    locked_by=locked_by,
                    lease_expires_at=db_now(conn, self.lease_seconds),
                    attempts=jobs.c.attempts + 1,
                    updated_at=now,
                )
                .returning(*jobs.c, reclaimed)
            )
            rows = conn.execute(stmt).all()
        self.metrics.claims.inc(len(rows))
        self.metrics.reclaims.inc(sum(1 for r in rows if r.reclaimed))
        return sorted((Job.from_row(r) for r in rows), key=lambda j: j.run_after)

    def reap(self) -> tuple[int, int]:
        """Settle expired leases that must not be claimed again: (failed, cancelled).

        A job whose last attempt died (lease expired) with no attempts left fails with a
        reason; one whose cancel was requested while its worker died is cancelled.
        """
        with self.engine.begin() as conn:
            now = db_now(conn)
            expired = and_(
                jobs.c.status.in_(_ACTIVE),
                or_(jobs.c.locked_by.is_(None), jobs.c.lease_expires_at < now),
            )
            cancelled = conn.execute(
                sql_update(jobs)
                .where(expired, jobs.c.cancel_requested.is_(True))
                .values(_final_values(conn, JobStatus.CANCELLED, "cancelled by the user"))
            ).rowcount
            failed = conn.execute(
                sql_update(jobs)
                .where(expired, jobs.c.attempts >= jobs.c.max_attempts)
                .values(
                    _final_values(
                        conn,
                        JobStatus.FAILED,
                        "gave up: the import stopped without finishing on every attempt "
                        "(worker crashed or timed out)",
                    )
                )
            ).rowcount
        self.metrics.record_failure(FailureReason.GAVE_UP, failed)
        return failed, cancelled

    def queue_stats(self) -> QueueStats:
        """Jobs by status, runnable jobs and the longest wait, in one GROUP BY."""
        with self.engine.connect() as conn:
            now = db_now(conn)
            runnable = _runnable(now)
            stmt = select(
                jobs.c.status,
                func.count().label("total"),
                func.count().filter(runnable).label("runnable"),
                func.min(jobs.c.run_after).filter(runnable).label("waiting_since"),
                now.label("now"),
            ).group_by(jobs.c.status)
            rows = conn.execute(stmt).all()
        since = [r.waiting_since for r in rows if r.waiting_since is not None]
        oldest = (rows[0].now - min(since)).total_seconds() if since else 0.0
        return QueueStats(
            by_status={r.status: r.total for r in rows},
            runnable=sum(r.runnable for r in rows),
            oldest_wait_seconds=max(0.0, oldest),
        )

    def heartbeat(self, lease: Lease) -> None:
        """Extend the lease; LeaseLost if it is no longer ours."""
        with self.engine.begin() as conn:
            self._fenced(conn, lease, {"lease_expires_at": db_now(conn, self.lease_seconds)})

    def release(
        self, lease: Lease, *, delay: float = 0.0, refund: bool, error: str | None = None
    ) -> None:
        """Give the job back to the queue, runnable again after ``delay`` seconds.

        ``refund`` returns the attempt: a job that stopped cleanly at a page boundary (budget
        spent, worker shutting down) has not failed, so a long import resumed over many ticks
        does not run out of attempts.
        """
        with self.engine.begin() as conn:
            values: dict[str, Any] = {
                "locked_by": None,
                "lease_expires_at": None,
                "run_after": db_now(conn, delay),
            }
            if refund:
                values["attempts"] = jobs.c.attempts - 1
            if error is not None:
                values["error_message"] = error
            self._fenced(conn, lease, values)
            _notify(conn, lease.job_id)

    def finish(self, lease: Lease, status: JobStatus, error: str | None = None) -> None:
        with self.engine.begin() as conn:
            self._fenced(conn, lease, _final_values(conn, status, error))

    def _fenced(self, conn: Connection, lease: Lease, values: dict[str, Any]) -> None:
        values.setdefault("updated_at", db_now(conn))
        result = conn.execute(sql_update(jobs).where(lease.matches()).values(values))
        if result.rowcount == 0:
            raise LeaseLost(f"lost the lease on job {lease.job_id}")

    # -- user actions ---------------------------------------------------------------------

    def cancel(self, job_id: UUID, user_id: str | None = None) -> Job:
        """Cancel now if no worker holds the job, else flag it for the worker's next page."""
        with self.engine.begin() as conn:
            job = self._locked_row(conn, job_id, user_id)
            if job.status not in ACTIVE_STATUSES:
                raise JobStateConflict(f"job {job_id} is already {job.status.value}")
            now = db_now(conn)
            unheld = or_(jobs.c.locked_by.is_(None), jobs.c.lease_expires_at < now)
            done_now = conn.execute(
                sql_update(jobs)
                .where(jobs.c.id == job_id, unheld)
                .values(
                    _final_values(conn, JobStatus.CANCELLED, "cancelled by the user")
                    | {"cancel_requested": True}
                )
            ).rowcount
            if not done_now:
                # A live worker holds it: it sees the flag at its next page and stops there.
                conn.execute(
                    sql_update(jobs)
                    .where(jobs.c.id == job_id)
                    .values(cancel_requested=True, updated_at=now)
                )
        return self.get(job_id)

    def retry(self, job_id: UUID, user_id: str | None = None) -> Job:
        """Queue a failed or cancelled job again, resuming from its cursor with fresh attempts.

        ONE conditional UPDATE decides (retryable status, and no other active job for the same
        user and provider), so a retry racing a new start cannot both win. On Postgres the
        NOT EXISTS cannot see a start that has not committed yet; the partial unique index
        then refuses the second active job, which is the same conflict.
        """
        other = jobs.alias("other")
        stmt = (
            sql_update(jobs)
            .where(jobs.c.id == job_id, jobs.c.status.in_(_RETRYABLE))
            .where(
                ~select(other.c.id)
                .where(_active_of(other, jobs.c.user_id, jobs.c.provider))
                .exists()
            )
            .returning(*jobs.c)
        )
        if user_id is not None:
            stmt = stmt.where(jobs.c.user_id == user_id)
        try:
            with self.engine.begin() as conn:
                row = conn.execute(stmt.values(_requeued_values(conn))).first()
                if row is not None:
                    _notify(conn, job_id)
                    return Job.from_row(row)
        except IntegrityError as exc:
            if not _is_one_active_violation(exc):
                raise
        raise self._retry_refusal(job_id, user_id)

    def _retry_refusal(self, job_id: UUID, user_id: str | None) -> JobError:
        """Why a retry matched nothing: no such job, its status, or another active job."""
        job = self.get(job_id, user_id=user_id)  # raises JobNotFound
        if job.status not in (JobStatus.FAILED, JobStatus.CANCELLED):
            return JobStateConflict(
                f"only failed or cancelled jobs can be retried; job {job_id} is {job.status.value}"
            )
        with self.engine.connect() as conn:
            running = conn.execute(
                select(jobs.c.id).where(_active_of(jobs, job.user_id, job.provider))
            ).scalar()
        where = f": job {running}" if running else ""
        return JobStateConflict(f"another {job.provider} import is already running{where}")

    def _locked_row(self, conn: Connection, job_id: UUID, user_id: str | None) -> Job:
        stmt = select(jobs).where(jobs.c.id == job_id).with_for_update()
        if user_id is not None:
            stmt = stmt.where(jobs.c.user_id == user_id)
        row = conn.execute(stmt).first()
        if row is None:
            raise JobNotFound(f"no import job {job_id}")
        return Job.from_row(row)
