"""The job queue's manager: every job operation, each one transaction, rows turned into ``Job``.

The statements are named in ``store.job_queries`` (why each is safe is written there); this
module runs them. ``JobStore`` methods own their transaction; ``checkpoint`` runs inside the
page's (``store.page``), which its caller owns. Nothing here counts metrics: ``claim`` and
``reap`` return what happened (``Claimed``, ``Reaped``) and the runners record it.

Every write to a claimed job is fenced by its ``Lease``; a write that matches no row raises
``LeaseLost``: the caller must stop and write nothing more.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import Connection, Engine, Update
from sqlalchemy import update as sql_update
from sqlalchemy.exc import IntegrityError

from contact_import.domain.job import ACTIVE_STATUSES, JobStatus
from contact_import.errors import JobError, JobNotFound, JobStateConflict, LeaseLost
from contact_import.store import job_lookups
from contact_import.store import job_queries as q
from contact_import.store.job_rows import (
    Checkpoint,
    Claimed,
    Job,
    Lease,
    PageCounts,
    QueueStats,
    Reaped,
    db_now,
    new_worker_name,
)
from contact_import.store.namespace import db_schema, notify_channel
from contact_import.store.notifications import NOTIFY_CHANNEL, notify_job
from contact_import.store.schema import jobs
from contact_import.store.sync_queries import queue_due_syncs
from contact_import.store.webhooks import record_job_ends

__all__ = [
    "NOTIFY_CHANNEL",
    "Checkpoint",
    "Claimed",
    "Job",
    "JobStore",
    "Lease",
    "PageCounts",
    "QueueStats",
    "Reaped",
    "checkpoint",
    "end_jobs",
    "new_worker_name",
]


def checkpoint(
    conn: Connection, lease: Lease, step: Checkpoint, *, lease_seconds: float, webhooks: bool
) -> bool:
    """Advance cursor and counts and extend the lease, inside the caller's transaction.

    Without a next cursor the job completes in the same transaction as its last contacts
    (and, with ``webhooks``, its ``import.completed`` event). Returns ``cancel_requested``;
    raises LeaseLost.
    """
    stmt = q.checkpoint_job(conn, lease, step, lease_seconds)
    if step.next_cursor is None:
        ended = end_jobs(conn, stmt, webhooks=webhooks)
        cancel = ended[0].cancel_requested if ended else None
    else:
        cancel = conn.execute(stmt.returning(jobs.c.cancel_requested)).scalar_one_or_none()
    if cancel is None:
        raise LeaseLost(f"lost the lease on job {lease.job_id}")
    return bool(cancel)


def end_jobs(conn: Connection, stmt: Update, *, webhooks: bool) -> list[Job]:
    """Run an UPDATE that ends jobs and, with ``webhooks``, put an event for each ended job
    in the outbox in the same transaction; the jobs it ended.

    Every path that ends a job goes through here (the last page, finish, the reaps, cancel),
    so no end escapes its event and no event outlives a rolled-back end.
    """
    ended = [Job.from_row(r) for r in conn.execute(stmt.returning(*jobs.c))]
    if webhooks:
        record_job_ends(conn, ended)
    return ended


def _fenced(conn: Connection, lease: Lease, values: dict[str, Any]) -> None:
    if conn.execute(q.fenced_update(conn, lease, values)).rowcount == 0:
        raise LeaseLost(f"lost the lease on job {lease.job_id}")


def _cancel(conn: Connection, job_id: UUID, *, webhooks: bool) -> None:
    """Cancel now if no worker holds the job (its event with it), else flag it for the
    worker's next page."""
    if not end_jobs(conn, q.cancel_if_unheld(conn, job_id), webhooks=webhooks):
        conn.execute(q.flag_cancel(conn, job_id))


def _is_one_active_violation(exc: IntegrityError) -> bool:
    """The partial unique index "one active job per (user, provider)" refused the write."""
    constraint = getattr(getattr(exc.orig, "diag", None), "constraint_name", None)
    if constraint is not None:  # psycopg names it
        return bool(constraint == q.ONE_ACTIVE_INDEX)
    # sqlite3 names the columns instead: "UNIQUE constraint failed: t.user_id, t.provider"
    message = str(exc.orig)
    return "UNIQUE" in message and "user_id" in message and "provider" in message


class JobStore:
    """Job operations, each in its own transaction."""

    def __init__(
        self, engine: Engine, *, lease_seconds: float, max_attempts: int = 5, webhooks: bool = False
    ) -> None:
        self.engine = engine
        self.lease_seconds = lease_seconds
        self.max_attempts = max_attempts
        # WEBHOOK_URL is set: every end of a job puts an event in the outbox (``end_jobs``).
        self.webhooks = webhooks

    @property
    def notify_channel(self) -> str:
        """Where this deployment's jobs are announced (its schema's channel): LISTEN here."""
        return notify_channel(db_schema(self.engine))

    # -- creating and reading -------------------------------------------------------------

    def create(self, user_id: str, provider: str, grant_id: UUID | None = None) -> tuple[Job, bool]:
        """Queue a job as ``fetching``; if one is active for (user, provider), return that one.

        Returns (job, created); see ``job_queries.insert_job`` for why two starts make one job.
        An active job whose cancel was requested (a disconnect, or the user, just before this
        new start) is kept going instead: the start asks for an import, and a job about to
        end ``cancelled`` would never import the new tokens.
        """
        with self.engine.begin() as conn:
            now = db_now(conn)
            values = {
                "id": uuid4(), "user_id": user_id, "provider": provider, "grant_id": grant_id,
                "status": JobStatus.FETCHING.value, "max_attempts": self.max_attempts,
                "run_after": now, "started_at": now, "updated_at": now,
            }  # fmt: skip
            row = conn.execute(q.insert_job(conn, values)).first()
            if row is not None:
                notify_job(conn, row.id)
                return Job.from_row(row), True
            existing = conn.execute(q.select_active(user_id, provider)).one()
            if existing.cancel_requested:  # jobs are never deleted: the row is there
                kept = sql_update(jobs).where(jobs.c.id == existing.id)
                existing = conn.execute(
                    kept.values(cancel_requested=False).returning(*jobs.c)
                ).one()
            return Job.from_row(existing), False

    def queue_syncs(self, interval_seconds: float) -> list[UUID]:
        """Queue continuous-sync imports of every account due (``sync_queries.queue_due_syncs``);
        the ids of the jobs queued."""
        with self.engine.begin() as conn:
            stmt = queue_due_syncs(conn, interval_seconds, self.max_attempts)
            queued = list(conn.execute(stmt).scalars())
            if queued:
                notify_job(conn, queued[0])  # one wake-up: a woken worker claims them all
        return queued

    def get(self, job_id: UUID, user_id: str | None = None) -> Job:
        """The job; JobNotFound when it does not exist or (with ``user_id``) is someone else's."""
        with self.engine.connect() as conn:
            return self._row(conn, job_id, user_id)

    def with_id_prefix(self, hex_prefix: str, *, limit: int = 2) -> list[Job]:
        """Up to ``limit`` jobs whose id starts with ``hex_prefix`` (lowercase hex, no dashes)."""
        with self.engine.connect() as conn:
            rows = conn.execute(job_lookups.jobs_with_id_prefix(hex_prefix, limit))
            return [Job.from_row(r) for r in rows]

    def list_jobs(
        self, *, user_id: str | None = None, statuses: Sequence[str] = (), limit: int = 50
    ) -> list[Job]:
        with self.engine.connect() as conn:
            return [Job.from_row(r) for r in conn.execute(q.list_jobs(user_id, statuses, limit))]

    def action_counts(self, job_id: UUID) -> dict[str, int]:
        """The original's audit query: how many contacts took each action in this job."""
        with self.engine.connect() as conn:
            return {
                action: count for action, count in conn.execute(job_lookups.action_counts(job_id))
            }

    def stuck(self, *, waiting_seconds: float = 300.0) -> list[Job]:
        """Active jobs whose lease expired, or that have waited to run for too long."""
        with self.engine.connect() as conn:
            return [Job.from_row(r) for r in conn.execute(q.stuck_jobs(conn, waiting_seconds))]

    def queue_stats(self) -> QueueStats:
        """Jobs by status, runnable jobs and the longest wait (for the scrape-time gauges)."""
        with self.engine.connect() as conn:
            rows = conn.execute(q.queue_stats(conn)).all()
        since = [r.waiting_since for r in rows if r.waiting_since is not None]
        oldest = (rows[0].now - min(since)).total_seconds() if since else 0.0
        return QueueStats(
            by_status={r.status: r.total for r in rows},
            runnable=sum(r.runnable for r in rows),
            oldest_wait_seconds=max(0.0, oldest),
        )

    # -- the queue ------------------------------------------------------------------------

    def claim(self, worker: str, limit: int, *, exclude: Sequence[UUID] = ()) -> Claimed:
        """Claim up to ``limit`` runnable jobs in ONE statement (``job_queries.claim_jobs``),
        each under a fresh lease (``locked_by`` unique per claim); oldest due first; never
        one in ``exclude`` (a tick runs each job at most once)."""
        return self._claim(worker, limit, exclude=exclude)

    def claim_job(self, worker: str, job_id: UUID) -> Claimed:
        """Claim that one job, with the same lease as ``claim``, if it is runnable now; none
        if another worker holds it (it was picked up already), it waits, or it ended."""
        return self._claim(worker, 1, only=job_id)

    def _claim(
        self, worker: str, limit: int, *, only: UUID | None = None, exclude: Sequence[UUID] = ()
    ) -> Claimed:
        locked_by = f"{worker}/{secrets.token_hex(4)}"
        with self.engine.begin() as conn:
            stmt = q.claim_jobs(
                conn, locked_by, limit, self.lease_seconds, only=only, exclude=exclude
            )
            rows = conn.execute(stmt).all()
        jobs = sorted((Job.from_row(r) for r in rows), key=lambda j: j.run_after)
        return Claimed(jobs, reclaimed=sum(1 for r in rows if r.reclaimed))

    def reap(self) -> Reaped:
        """Settle expired leases that must not be claimed again.

        A job whose last attempt died (lease expired) with no attempts left fails with a
        reason; one whose cancel was requested while its worker died is cancelled.
        """
        with self.engine.begin() as conn:
            cancelled = len(end_jobs(conn, q.reap_cancelled(conn), webhooks=self.webhooks))
            failed = len(end_jobs(conn, q.reap_gave_up(conn), webhooks=self.webhooks))
        return Reaped(failed=failed, cancelled=cancelled)

    def heartbeat(self, lease: Lease) -> None:
        """Extend the lease; LeaseLost if it is no longer ours."""
        with self.engine.begin() as conn:
            _fenced(conn, lease, {"lease_expires_at": db_now(conn, self.lease_seconds)})

    def release(
        self, lease: Lease, *, delay: float = 0.0, refund: bool, error: str | None = None
    ) -> None:
        """Give the job back to the queue, runnable again after ``delay`` seconds; ``refund``
        returns the attempt (see ``job_queries.release_values``)."""
        with self.engine.begin() as conn:
            _fenced(conn, lease, q.release_values(conn, delay=delay, refund=refund, error=error))
            notify_job(conn, lease.job_id)

    def finish(self, lease: Lease, status: JobStatus, error: str | None = None) -> None:
        """End the job; one whose cancel was requested meanwhile ends ``cancelled`` even if it
        failed (a disconnect deletes the tokens under a running import)."""
        with self.engine.begin() as conn:
            values = q.final_values(conn, status, error)
            if status is JobStatus.FAILED:
                values |= q.cancelled_if_requested(error)
            if not end_jobs(conn, q.fenced_update(conn, lease, values), webhooks=self.webhooks):
                raise LeaseLost(f"lost the lease on job {lease.job_id}")

    # -- user actions ---------------------------------------------------------------------

    def cancel(self, job_id: UUID, user_id: str | None = None) -> Job:
        """Cancel now if no worker holds the job, else flag it for the worker's next page."""
        with self.engine.begin() as conn:
            job = self._row(conn, job_id, user_id, for_update=True)
            if job.status not in ACTIVE_STATUSES:
                raise JobStateConflict(f"job {job_id} is already {job.status.value}")
            _cancel(conn, job_id, webhooks=self.webhooks)
        return self.get(job_id)

    def forget_cursors(self, conn: Connection, grant_id: UUID) -> None:
        """A disconnect: the ended jobs of the grant lose their page cursors, which can hold a
        provider's sync token or delta links (read access to the book, kept in clear)."""
        ended = jobs.c.status.not_in([s.value for s in ACTIVE_STATUSES])
        conn.execute(
            sql_update(jobs).where(jobs.c.grant_id == grant_id, ended).values(page_cursor=None)
        )

    def cancel_active(self, conn: Connection, user_id: str, provider: str) -> UUID | None:
        """Cancel the active job of (user, provider), if any, in ``conn``'s transaction: at once
        when no worker holds it, else at the running import's next page. Its id, or None."""
        row = conn.execute(q.select_active(user_id, provider).with_for_update()).first()
        if row is None:
            return None
        _cancel(conn, row.id, webhooks=self.webhooks)
        return UUID(str(row.id))

    def retry(self, job_id: UUID, user_id: str | None = None) -> Job:
        """Queue a failed or cancelled job again, resuming from its cursor with fresh attempts
        (``job_queries.requeue_job`` says why a racing start cannot also win)."""
        try:
            with self.engine.begin() as conn:
                row = conn.execute(q.requeue_job(conn, job_id, user_id)).first()
                if row is not None:
                    notify_job(conn, job_id)
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
            running = conn.execute(q.running_job_id(job.user_id, job.provider)).scalar()
        where = f": job {running}" if running else ""
        return JobStateConflict(f"another {job.provider} import is already running{where}")

    @staticmethod
    def _row(
        conn: Connection, job_id: UUID, user_id: str | None, *, for_update: bool = False
    ) -> Job:
        row = conn.execute(q.select_job(job_id, user_id, for_update=for_update)).first()
        if row is None:
            raise JobNotFound(f"no import job {job_id}")
        return Job.from_row(row)
