"""Tables, as SQLAlchemy Core: the original's three plus grants and match keys.

The migrations in ``store/migrations`` create exactly these; a test checks the two agree.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator

__all__ = [
    "ACTIVE_GRANT_SQL",
    "ACTIVE_SQL",
    "UTCDateTime",
    "contact_match_keys",
    "contacts",
    "imported_contacts",
    "jobs",
    "metadata",
    "oauth_states",
    "provider_grants",
    "provider_versions",
    "webhook_attempts",
    "webhook_events",
]

# Statuses a job can be claimed or resumed from; the partial indexes below use the same text.
ACTIVE_SQL = "status IN ('fetching', 'processing')"
# Grants continuous sync may queue imports for (``provider_grants.status``).
ACTIVE_GRANT_SQL = "status = 'active'"


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on both backends (SQLite stores them as naive UTC text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass an aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


Json = JSON().with_variant(JSONB(), "postgresql")
metadata = MetaData()


def _count(name: str) -> Column[int]:
    return Column(name, Integer, nullable=False, server_default=text("0"))


provider_grants = Table(
    "provider_grants",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("user_id", Text, nullable=False),
    Column("provider", Text, nullable=False),
    Column("account_id", Text),
    Column("access_token_enc", Text),
    Column("refresh_token_enc", Text),
    Column("access_token_expires_at", UTCDateTime),
    Column("scopes", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    # Google nextSyncToken / Microsoft deltaLink of the last complete listing (encrypted: a
    # deltaLink is a URL that, with an access token, reads the whole address book).
    Column("sync_token_enc", Text),
    # The connected account's email, when the provider told it (shown, never a credential).
    Column("account_email", Text),
    # active: synced and usable; revoked: the user disconnected (every token is gone);
    # refresh_failed: the provider refused a refresh for good (not synced until reconnected).
    Column("status", Text, nullable=False, server_default=text("'active'")),
    # When a listing of this account last completed (continuous sync counts from here).
    Column("last_synced_at", UTCDateTime),
    CheckConstraint(
        "status IN ('active', 'revoked', 'refresh_failed')", name="ck_provider_grants_status"
    ),
    # One connection per user and provider: reconnecting replaces its tokens in place.
    Index("uq_provider_grants_user", "user_id", "provider", unique=True),
    # Serves continuous sync's scan for due accounts (``store.sync_queries``): active only.
    Index(
        "ix_provider_grants_sync_due",
        "last_synced_at",
        "created_at",
        postgresql_where=text(ACTIVE_GRANT_SQL),
        sqlite_where=text(ACTIVE_GRANT_SQL),
    ),
)

# A started OAuth flow: random, single use, short-lived, bound to the user who started it and
# to their browser (the SHA-256 of the nonce cookie ``start`` set; NULL only for states saved
# before 0003). Only hashes are stored, so a leaked table cannot complete anyone's flow.
oauth_states = Table(
    "oauth_states",
    metadata,
    Column("state_hash", Text, primary_key=True),
    Column("user_id", Text, nullable=False),
    Column("provider", Text, nullable=False),
    Column("code_verifier_enc", Text, nullable=False),
    Column("redirect_uri", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("used_at", UTCDateTime),
    Column("browser_hash", Text),
    Index("ix_oauth_states_expires", "expires_at"),
    # Serves the per-(user, provider) limit on live states.
    Index("ix_oauth_states_user", "user_id", "provider", "created_at"),
)

jobs = Table(
    "contact_import_jobs",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("user_id", Text, nullable=False),
    Column("provider", Text, nullable=False),
    Column("status", Text, nullable=False, server_default=text("'fetching'")),
    Column("grant_id", Uuid, ForeignKey("provider_grants.id", ondelete="SET NULL")),
    _count("total_contacts"),
    _count("processed_contacts"),
    _count("created_contacts"),
    _count("updated_contacts"),
    _count("imported_contacts"),
    _count("skipped_contacts"),
    _count("failed_contacts"),
    _count("pages_done"),
    Column("page_cursor", Text),
    Column("error_message", Text),
    _count("attempts"),
    Column("max_attempts", Integer, nullable=False, server_default=text("5")),
    Column("locked_by", Text),
    Column("lease_expires_at", UTCDateTime),
    Column("run_after", UTCDateTime, nullable=False),
    Column("cancel_requested", Boolean, nullable=False, server_default=text("false")),
    Column("started_at", UTCDateTime, nullable=False),
    Column("completed_at", UTCDateTime),
    Column("updated_at", UTCDateTime, nullable=False),
    # Who queued it: the user (OAuth, their own tokens, a retry) or continuous sync.
    Column("trigger", Text, nullable=False, server_default=text("'user'")),
    CheckConstraint("\"trigger\" IN ('user', 'sync')", name="ck_contact_import_jobs_trigger"),
    CheckConstraint(
        "status IN ('fetching', 'processing', 'completed', 'failed', 'cancelled')",
        name="ck_contact_import_jobs_status",
    ),
    # Serves the claim: only active jobs are in it, ordered by when they may run.
    Index(
        "ix_contact_import_jobs_claimable",
        "run_after",
        postgresql_where=text(ACTIVE_SQL),
        sqlite_where=text(ACTIVE_SQL),
    ),
    # At most one active job per (user, provider): a second start returns the first.
    Index(
        "uq_contact_import_jobs_one_active",
        "user_id",
        "provider",
        unique=True,
        postgresql_where=text(ACTIVE_SQL),
        sqlite_where=text(ACTIVE_SQL),
    ),
    Index("ix_contact_import_jobs_user", "user_id", "started_at"),
    # Serves the audit retention: jobs that ended before a cutoff.
    Index("ix_contact_import_jobs_completed", "completed_at"),
)

contacts = Table(
    "contacts",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("user_id", Text, nullable=False),
    Column("display_name", Text, nullable=False, server_default=text("''")),
    Column("emails", Json, nullable=False),
    Column("phones", Json, nullable=False),
    # The email:/phone: keys of this contact's values (see domain/merge.py), kept so a merge
    # never has to re-parse stored phone numbers.
    Column("match_keys", Json, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_contacts_user", "user_id", "created_at", "id"),
)

# Who owns each key: unique per user in the database, so two concurrent imports cannot both
# create a contact for one email.
contact_match_keys = Table(
    "contact_match_keys",
    metadata,
    Column("user_id", Text, primary_key=True),
    Column("key", Text, primary_key=True),
    Column(
        "contact_id",
        Uuid,
        ForeignKey("contacts.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Index("ix_contact_match_keys_contact", "contact_id"),
)

imported_contacts = Table(
    "imported_contacts",
    metadata,
    Column(
        "import_job_id",
        Uuid,
        ForeignKey("contact_import_jobs.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("provider_contact_id", Text, primary_key=True),
    # No foreign key: this is an audit trail and outlives a contact the user deletes.
    Column("contact_id", Uuid),
    Column("action", Text, nullable=False),
    Column("detail", Text),
    Column("raw_data", Json),
    Column("created_at", UTCDateTime, nullable=False),
    CheckConstraint(
        "action IN ('created', 'updated', 'skipped', 'failed')",
        name="ck_imported_contacts_action",
    ),
)

# The provider's version (Google etag, Graph changeKey) of each contact as last imported, and
# the contact it went into: a full listing skips a contact whose version is the same and whose
# identity key still belongs to that contact (``store/seen.py``).
# No foreign key: that identity key decides, so a contact deleted or merged away here is
# simply not matched (and its row is overwritten by the next import of the contact).
provider_versions = Table(
    "provider_versions",
    metadata,
    Column("user_id", Text, primary_key=True),
    Column("provider", Text, primary_key=True),
    Column("provider_contact_id", Text, primary_key=True),
    Column("contact_id", Uuid, nullable=False),
    Column("version", Text, nullable=False),
)

# The webhook outbox: one row per event, written in the transaction that produced it (a job's
# final state), delivered at least once by workers and ticks (runner/webhooks.py). ``id`` is
# the Standard Webhooks ``webhook-id``, the same on every attempt; ``payload`` is the body,
# stored as text so every attempt sends the same bytes.
webhook_events = Table(
    "webhook_events",
    metadata,
    Column("id", Text, primary_key=True),
    Column("type", Text, nullable=False),
    # No foreign key: the event outlives the job (and ``connection.revoked`` has none).
    Column("job_id", Uuid),
    Column("payload", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    _count("attempts"),
    Column("status", Text, nullable=False, server_default=text("'pending'")),
    Column("locked_by", Text),
    Column("lease_expires_at", UTCDateTime),
    Column("delivered_at", UTCDateTime),
    Column("last_error", Text),
    CheckConstraint(
        "status IN ('pending', 'delivered', 'gave_up')", name="ck_webhook_events_status"
    ),
    # Serves the delivery claim: only pending events are in it, by when they are due.
    Index(
        "ix_webhook_events_due",
        "next_attempt_at",
        postgresql_where=text("status = 'pending'"),
        sqlite_where=text("status = 'pending'"),
    ),
    # Serves "an earlier event of this job is still pending" (order per job).
    Index("ix_webhook_events_job", "job_id", "created_at"),
    Index("ix_webhook_events_delivered", "delivered_at"),
)

webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column(
        "event_id",
        Text,
        ForeignKey("webhook_events.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("attempted_at", UTCDateTime, nullable=False),
    Column("status_code", Integer),
    Column("duration_ms", Integer, nullable=False),
    Column("error", Text),
    Index("ix_webhook_attempts_event", "event_id", "attempted_at"),
)
