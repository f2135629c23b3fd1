"""The original's tables plus leases, cursors, counts, grants and match keys.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from contact_import.store.schema import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ACTIVE = sa.text("status IN ('fetching', 'processing')")
JSON = sa.JSON().with_variant(JSONB(), "postgresql")


def _counts(*names: str) -> list[sa.Column[int]]:
    return [sa.Column(n, sa.Integer, nullable=False, server_default=sa.text("0")) for n in names]


def upgrade() -> None:
    op.create_table(
        "provider_grants",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("user_id", sa.Text, nullable=False),
        sa.Column("provider", sa.Text, nullable=False),
        sa.Column("account_id", sa.Text),
        sa.Column("access_token_enc", sa.Text),
        sa.Column("refresh_token_enc", sa.Text),
        sa.Column("access_token_expires_at", UTCDateTime),
        sa.Column("scopes", sa.Text),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_provider_grants_user", "provider_grants", ["user_id", "provider"])
    op.create_table(
        "contact_import_jobs",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("user_id", sa.Text, nullable=False),
        sa.Column("provider", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False, server_default=sa.text("'fetching'")),
        sa.Column("grant_id", sa.Uuid, sa.ForeignKey("provider_grants.id", ondelete="SET NULL")),
        *_counts(
            "total_contacts",
            "processed_contacts",
            "created_contacts",
            "updated_contacts",
            "imported_contacts",
            "skipped_contacts",
            "failed_contacts",
            "pages_done",
        ),
        sa.Column("page_cursor", sa.Text),
        sa.Column("error_message", sa.Text),
        *_counts("attempts"),
        sa.Column("max_attempts", sa.Integer, nullable=False, server_default=sa.text("5")),
        sa.Column("locked_by", sa.Text),
        sa.Column("lease_expires_at", UTCDateTime),
        sa.Column("run_after", UTCDateTime, nullable=False),
        sa.Column("cancel_requested", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("started_at", UTCDateTime, nullable=False),
        sa.Column("completed_at", UTCDateTime),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.CheckConstraint(
            "status IN ('fetching', 'processing', 'completed', 'failed', 'cancelled')",
            name="ck_contact_import_jobs_status",
        ),
    )
    op.create_index(
        "ix_contact_import_jobs_claimable",
        "contact_import_jobs",
        ["run_after"],
        postgresql_where=ACTIVE,
        sqlite_where=ACTIVE,
    )
    op.create_index(
        "uq_contact_import_jobs_one_active",
        "contact_import_jobs",
        ["user_id", "provider"],
        unique=True,
        postgresql_where=ACTIVE,
        sqlite_where=ACTIVE,
    )
    op.create_index("ix_contact_import_jobs_user", "contact_import_jobs", ["user_id", "started_at"])
    op.create_table(
        "contacts",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("user_id", sa.Text, nullable=False),
        sa.Column("display_name", sa.Text, nullable=False, server_default=sa.text("''")),
        sa.Column("emails", JSON, nullable=False),
        sa.Column("phones", JSON, nullable=False),
        sa.Column("match_keys", JSON, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_contacts_user", "contacts", ["user_id", "created_at", "id"])
    op.create_table(
        "contact_match_keys",
        sa.Column("user_id", sa.Text, primary_key=True),
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column(
            "contact_id",
            sa.Uuid,
            sa.ForeignKey("contacts.id", ondelete="CASCADE"),
            nullable=False,
        ),
    )
    op.create_index("ix_contact_match_keys_contact", "contact_match_keys", ["contact_id"])
    op.create_table(
        "imported_contacts",
        sa.Column(
            "import_job_id",
            sa.Uuid,
            sa.ForeignKey("contact_import_jobs.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("provider_contact_id", sa.Text, primary_key=True),
        sa.Column("contact_id", sa.Uuid),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("detail", sa.Text),
        sa.Column("raw_data", JSON),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.CheckConstraint(
            "action IN ('created', 'updated', 'skipped', 'failed')",
            name="ck_imported_contacts_action",
        ),
    )


def downgrade() -> None:
    for table in (
        "imported_contacts",
        "contact_match_keys",
        "contacts",
        "contact_import_jobs",
        "provider_grants",
    ):
        op.drop_table(table)
