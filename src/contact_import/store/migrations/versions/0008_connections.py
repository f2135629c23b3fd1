"""Connections a user can see and disconnect, continuous sync: the account's email, the
grant's status and its last complete listing on ``provider_grants``; who queued a job
(``trigger``: ``user`` or ``sync``) on ``contact_import_jobs``.

No new table (so no row level security to enable here). Existing grants are ``active``;
existing jobs were all queued by their user.

Revision ID: 0008_connections
Revises: 0007_webhooks
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from contact_import.store.schema import ACTIVE_GRANT_SQL, UTCDateTime

revision = "0008_connections"
down_revision = "0007_webhooks"
branch_labels = None
depends_on = None


# Plain ALTER TABLE, never batch mode: on SQLite a batch rebuilds the table (copy, drop,
# rename), and with foreign keys on (store/db.py) dropping the old provider_grants would
# cascade-delete imported_contacts and null every job's grant_id. SQLite (3.35+) and Postgres
# both add and drop a column with its own named CHECK in place.
_STATUS = (
    "ALTER TABLE provider_grants ADD COLUMN status TEXT NOT NULL DEFAULT 'active' "
    "CONSTRAINT ck_provider_grants_status CHECK (status IN ('active', 'revoked', 'refresh_failed'))"
)
_TRIGGER = (
    "ALTER TABLE contact_import_jobs ADD COLUMN \"trigger\" TEXT NOT NULL DEFAULT 'user' "
    "CONSTRAINT ck_contact_import_jobs_trigger CHECK (\"trigger\" IN ('user', 'sync'))"
)


def upgrade() -> None:
    op.add_column("provider_grants", sa.Column("account_email", sa.Text))
    op.execute(_STATUS)
    op.add_column("provider_grants", sa.Column("last_synced_at", UTCDateTime))
    op.create_index(
        "ix_provider_grants_sync_due",
        "provider_grants",
        ["last_synced_at", "created_at"],
        postgresql_where=sa.text(ACTIVE_GRANT_SQL),
        sqlite_where=sa.text(ACTIVE_GRANT_SQL),
    )
    op.execute(_TRIGGER)


def downgrade() -> None:
    op.execute('ALTER TABLE contact_import_jobs DROP COLUMN "trigger"')
    op.drop_index("ix_provider_grants_sync_due", table_name="provider_grants")
    for column in ("last_synced_at", "status", "account_email"):
        op.execute(f"ALTER TABLE provider_grants DROP COLUMN {column}")
