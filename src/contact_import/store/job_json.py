"""A job as the API shows it (``JobOut``): one serializer for the HTTP API, the status page's
feed and the CLI's ``--json``, so their fields cannot drift apart.

A pydantic model, so the web layer's OpenAPI schema is generated from it; it lives here, beside
``Job``, because both the web and the CLI layers build it and neither may import the other.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, Field

from contact_import.store.job_rows import Job, job_fields

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
        return cls(**job_fields(job))  # the webhook's `data` is built from the same list


class JobsOut(BaseModel):
    jobs: list[JobOut]
