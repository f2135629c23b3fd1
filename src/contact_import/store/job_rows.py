"""The rows the job queue hands around: a job, the lease that fences writes to it, counts,
and what a claim or a reap did (facts the runners turn into metrics).

``db_now``, the one clock all job SQL uses, lives in ``store.clock`` (re-exported here).
"""

from __future__ import annotations

import secrets
import socket
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, NamedTuple
from uuid import UUID

from sqlalchemy import ColumnElement, and_

from contact_import.domain.job import JobStatus
from contact_import.errors import LeaseLost
from contact_import.store.clock import db_now
from contact_import.store.schema import jobs

__all__ = [
    "PUBLIC_JOB_FIELDS",
    "Checkpoint",
    "Claimed",
    "Job",
    "Lease",
    "PageCounts",
    "QueueStats",
    "Reaped",
    "db_now",
    "job_fields",
    "new_worker_name",
]

# What the status route (and a webhook event's ``data``) tells about a job, in that order.
PUBLIC_JOB_FIELDS = (
    "id", "provider", "status", "total_contacts", "processed_contacts", "created_contacts",
    "updated_contacts", "imported_contacts", "skipped_contacts", "failed_contacts",
    "attempts", "max_attempts", "error_message", "cancel_requested", "started_at",
    "completed_at", "updated_at", "trigger",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Job:
    """A row of ``contact_import_jobs``."""

    id: UUID
    user_id: str
    provider: str
    status: JobStatus
    grant_id: UUID | None
    total_contacts: int
    processed_contacts: int
    created_contacts: int
    updated_contacts: int
    imported_contacts: int
    skipped_contacts: int
    failed_contacts: int
    pages_done: int
    page_cursor: str | None
    error_message: str | None
    attempts: int
    max_attempts: int
    locked_by: str | None
    lease_expires_at: datetime | None
    run_after: datetime
    cancel_requested: bool
    started_at: datetime
    completed_at: datetime | None
    updated_at: datetime
    trigger: str = "user"  # who queued it: "user", or "sync" (continuous sync)

    @classmethod
    def from_row(cls, row: Any) -> Job:
        data = {f.name: row._mapping[f.name] for f in fields(cls)}
        data["status"] = JobStatus(data["status"])
        return cls(**data)

    @property
    def lease(self) -> Lease:
        if self.locked_by is None:
            raise LeaseLost(f"job {self.id} is not claimed")
        return Lease(self.id, self.locked_by, self.attempts)


@dataclass(frozen=True, slots=True)
class Lease:
    """The fence for writes to a claimed job."""

    job_id: UUID
    locked_by: str
    attempts: int

    def matches(self) -> ColumnElement[bool]:
        return and_(
            jobs.c.id == self.job_id,
            jobs.c.locked_by == self.locked_by,
            jobs.c.attempts == self.attempts,
        )


@dataclass(frozen=True, slots=True)
class PageCounts:
    """What one page added to the job's counts."""

    created: int = 0
    updated: int = 0
    skipped: int = 0
    failed: int = 0

    @property
    def processed(self) -> int:
        return self.created + self.updated + self.skipped + self.failed

    def as_log_fields(self) -> dict[str, int]:
        # Prefixed: "created" would collide with a LogRecord attribute.
        return {
            "contacts_created": self.created,
            "contacts_updated": self.updated,
            "contacts_skipped": self.skipped,
            "contacts_failed": self.failed,
        }


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """What one stored page moves on its job: the counts it adds, where the listing goes next
    (None: that was the last page) and the provider's total, when it says one."""

    counts: PageCounts
    next_cursor: str | None
    provider_total: int | None = None


@dataclass(frozen=True, slots=True)
class Claimed:
    """What one claim took: its jobs, each under a fresh lease, and how many of them were
    reclaimed (their previous lease had expired: the worker died or stalled)."""

    jobs: list[Job]
    reclaimed: int = 0


class Reaped(NamedTuple):
    """What one reap settled: jobs failed (their last attempt died), jobs cancelled."""

    failed: int
    cancelled: int


@dataclass(frozen=True, slots=True)
class QueueStats:
    """What the queue looks like right now (for the scrape-time gauges)."""

    by_status: dict[str, int]
    runnable: int
    oldest_wait_seconds: float


def job_fields(job: Job) -> dict[str, Any]:
    """The job as the API shows it (``PUBLIC_JOB_FIELDS``), as Python values."""
    fields_ = {name: getattr(job, name) for name in PUBLIC_JOB_FIELDS}
    fields_["status"] = job.status.value
    return fields_


def new_worker_name() -> str:
    return f"{socket.gethostname()}:{secrets.token_hex(3)}"
