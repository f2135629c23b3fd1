"""A job as the API shows it (``JobOut``): one serializer for the HTTP API, the status page's
feed and the CLI's ``--json``, so their fields cannot drift apart.

A pydantic model, so the web layer's OpenAPI schema is generated from it; it lives here, beside
``Job``, because both the web and the CLI layers build it and neither may import the other.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, Field

from contact_import.store.job_rows import Job

__all__ = ["JobOut", "JobsOut"]


class JobOut(BaseModel):
    id: UUID
    provider: str
    status: str = Field(description="fetching, processing, completed, failed or cancelled")
    total_contacts: int
    processed_contacts: int
    created_contacts: int
    updated_contacts: int
    imported_contacts: int = Field(description="created + updated")
    skipped_contacts: int
    failed_contacts: int
    attempts: int
    max_attempts: int
    error_message: str | None
    cancel_requested: bool
    started_at: datetime
    completed_at: datetime | None
    updated_at: datetime
    trigger: str = Field(description="who queued it: user, or sync (continuous sync)")

    @classmethod
    def of(cls, job: Job) -> JobOut:
        return cls(
            id=job.id, provider=job.provider, status=job.status.value,
            total_contacts=job.total_contacts, processed_contacts=job.processed_contacts,
            created_contacts=job.created_contacts, updated_contacts=job.updated_contacts,
            imported_contacts=job.imported_contacts, skipped_contacts=job.skipped_contacts,
            failed_contacts=job.failed_contacts, attempts=job.attempts,
            max_attempts=job.max_attempts, error_message=job.error_message,
            cancel_requested=job.cancel_requested, started_at=job.started_at,
            completed_at=job.completed_at, updated_at=job.updated_at, trigger=job.trigger,
        )  # fmt: skip


class JobsOut(BaseModel):
    jobs: list[JobOut]
