"""Provider versions: the Google etag / Graph changeKey of each contact as last imported, and
the contact it went into, so a full re-import skips what did not change at the provider.

A new table only (plain CREATE TABLE, no batch mode on an existing table).

Revision ID: 0009_provider_versions
Revises: 0008_connections
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from contact_import.store.row_security import enable_row_level_security

revision = "0009_provider_versions"
down_revision = "0008_connections"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "provider_versions",
        sa.Column("user_id", sa.Text, primary_key=True),
        sa.Column("provider", sa.Text, primary_key=True),
        sa.Column("provider_contact_id", sa.Text, primary_key=True),
        sa.Column("contact_id", sa.Uuid, nullable=False),
        sa.Column("version", sa.Text, nullable=False),
    )
    enable_row_level_security(op.get_bind(), ["provider_versions"])


def downgrade() -> None:
    op.drop_table("provider_versions")
