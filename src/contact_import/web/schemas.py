"""What the API answers, as pydantic models: the OpenAPI schema is generated from these.

A job's JSON (``JobOut``) lives in ``store.job_json``: the CLI's ``--json`` emits it too.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from contact_import.store.job_json import JobOut, JobsOut

__all__ = [
    "VALIDATION_ERROR",
    "AuthUrlOut",
    "CallbackIn",
    "ConnectedOut",
    "ContactOut",
    "ContactsOut",
    "CronJobIds",
    "CronOut",
    "ErrorOut",
    "HealthOut",
    "JobOut",
    "JobsOut",
    "ProgressOut",
]


class ErrorOut(BaseModel):
    error: str = Field(description="what went wrong, readable by a person")


# Our validation errors are {"error": ...} too; this replaces FastAPI's default 422 schema.
VALIDATION_ERROR: dict[int | str, dict[str, Any]] = {
    422: {"model": ErrorOut, "description": "a parameter is missing or malformed"}
}


class AuthUrlOut(BaseModel):
    auth_url: str = Field(description="send the user's browser here to grant access")


class ProgressOut(JobOut):
    """What the status page polls: the job, and the page's texts about its pace."""

    waiting: str = Field(description='a queued job: "Waiting for a worker · 2 min so far"; else ""')
    rate: str = Field(description='a running job: "1,234 contacts/s"; "" when not estimable')
    eta: str = Field(description='a running job: "about 3 min left"; "" when not estimable')
    account_email: str | None = Field(description="the connected account's email, when known")


class CallbackIn(BaseModel):
    code: str = Field(min_length=1, max_length=4096, description="the provider's code")
    state: str = Field(min_length=1, max_length=512, description="the state it came back with")


# A provider token: printable ASCII without spaces (OAuth access and refresh tokens are), at most
# 8 KiB (Microsoft's access tokens are JWTs of a few KiB).
_TOKEN = r"^[\x21-\x7e]+$"  # noqa: S105 (a pattern, not a secret)
_MAX_TOKEN = 8192


class OwnTokensIn(BaseModel):
    """Provider tokens the app already holds (Supabase: ``provider_token`` and
    ``provider_refresh_token`` of the session)."""

    model_config = ConfigDict(extra="forbid")

    access_token: StrictStr = Field(min_length=1, max_length=_MAX_TOKEN, pattern=_TOKEN)
    refresh_token: StrictStr | None = Field(
        default=None,
        min_length=1,
        max_length=_MAX_TOKEN,
        pattern=_TOKEN,
        description="without it the import fails once the access token expires",
    )
    expires_in: StrictInt | None = Field(
        default=None, ge=0, le=31_536_000, description="seconds the access token stays valid"
    )


class ConnectionOut(BaseModel):
    provider: str
    status: str = Field(description="active, revoked (disconnected) or refresh_failed")
    account_email: str | None = Field(description="when the provider tells it")
    connected_at: datetime
    last_synced_at: datetime | None = Field(description="when a listing last completed")
    next_sync_at: datetime | None = Field(description="null: continuous sync is off or stopped")


class ConnectionsOut(BaseModel):
    connections: list[ConnectionOut]


class DisconnectedOut(BaseModel):
    provider: str
    revoked_at_provider: bool = Field(
        description="the provider confirmed the revocation; false when it failed or, as "
        "Microsoft, has none for this flow (the tokens are forgotten here either way)"
    )
    cancelled_job_id: UUID | None = Field(description="the active import this cancelled")


class ConnectedOut(BaseModel):
    job: JobOut
    status_url: str = Field(description="the job's live status page (a signed link)")


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
