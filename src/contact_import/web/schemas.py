"""What the API answers, as pydantic models: the OpenAPI schema is generated from these."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field

from contact_import.store.job_rows import job_fields
from contact_import.store.jobs import Job


class ErrorOut(BaseModel):
    error: str = Field(description="what went wrong, readable by a person")


# Our validation errors are {"error": ...} too; this replaces FastAPI's default 422 schema.
VALIDATION_ERROR: dict[int | str, dict[str, Any]] = {
    422: {"model": ErrorOut, "description": "a parameter is missing or malformed"}
}


class AuthUrlOut(BaseModel):
    auth_url: str = Field(description="send the user's browser here to grant access")


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

    @classmethod
    def of(cls, job: Job) -> JobOut:
        return cls(**job_fields(job))


class CallbackIn(BaseModel):
    code: str = Field(min_length=1, max_length=4096, description="the provider's code")
    state: str = Field(min_length=1, max_length=512, description="the state it came back with")


class ConnectedOut(BaseModel):
    job: JobOut
    status_url: str = Field(description="the job's live status page (a signed link)")


class JobsOut(BaseModel):
    jobs: list[JobOut]


class ContactOut(BaseModel):
    id: UUID
    display_name: str
    emails: list[str]
    phones: list[str]
    created_at: datetime
    updated_at: datetime


class ContactsOut(BaseModel):
    contacts: list[ContactOut]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page; null: done")


class CronJobIds(BaseModel):
    processed: list[str]
    failed: list[str]
    continuing: list[str] = Field(description="spent the budget or backing off; resume later")
    cancelled: list[str]


class CronOut(BaseModel):
    message: str
    processed: int
    failed: int
    job_ids: CronJobIds


class HealthOut(BaseModel):
    status: str
    database: str
    # "running", "off" (no in-process worker: `serve --no-worker`, serverless), or
    # "stopped: <reason>" (then status is "unavailable" and `serve` is exiting).
    worker: str = "off"
