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


def upgrade() -> None:
    with op.batch_alter_table("provider_grants") as batch:
        batch.add_column(sa.Column("account_email", sa.Text))
        batch.add_column(
            sa.Column("status", sa.Text, nullable=False, server_default=sa.text("'active'"))
        )
        batch.add_column(sa.Column("last_synced_at", UTCDateTime))
        batch.create_check_constraint(
            "ck_provider_grants_status", "status IN ('active', 'revoked', 'refresh_failed')"
        )
        batch.create_index(
            "ix_provider_grants_sync_due",
            ["last_synced_at", "created_at"],
            postgresql_where=sa.text(ACTIVE_GRANT_SQL),
            sqlite_where=sa.text(ACTIVE_GRANT_SQL),
        )
    with op.batch_alter_table("contact_import_jobs") as batch:
        batch.add_column(
            sa.Column("trigger", sa.Text, nullable=False, server_default=sa.text("'user'"))
        )
        batch.create_check_constraint(
            "ck_contact_import_jobs_trigger", "\"trigger\" IN ('user', 'sync')"
        )


def downgrade() -> None:
    with op.batch_alter_table("contact_import_jobs") as batch:
        batch.drop_constraint("ck_contact_import_jobs_trigger", type_="check")
        batch.drop_column("trigger")
    with op.batch_alter_table("provider_grants") as batch:
        batch.drop_index("ix_provider_grants_sync_due")
        batch.drop_constraint("ck_provider_grants_status", type_="check")
        batch.drop_column("last_synced_at")
        batch.drop_column("status")
        batch.drop_column("account_email")
