"""OAuth states, one grant per (user, provider), sync tokens for incremental re-imports.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from contact_import.store.schema import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "oauth_states",
        sa.Column("state_hash", sa.Text, primary_key=True),
        sa.Column("user_id", sa.Text, nullable=False),
        sa.Column("provider", sa.Text, nullable=False),
        sa.Column("code_verifier_enc", sa.Text, nullable=False),
        sa.Column("redirect_uri", sa.Text, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("expires_at", UTCDateTime, nullable=False),
        sa.Column("used_at", UTCDateTime),
    )
    op.create_index("ix_oauth_states_expires", "oauth_states", ["expires_at"])
    with op.batch_alter_table("provider_grants") as batch:
        batch.add_column(sa.Column("sync_token_enc", sa.Text))
        batch.drop_index("ix_provider_grants_user")
        batch.create_index("uq_provider_grants_user", ["user_id", "provider"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("provider_grants") as batch:
        batch.drop_index("uq_provider_grants_user")
        batch.create_index("ix_provider_grants_user", ["user_id", "provider"])
        batch.drop_column("sync_token_enc")
    op.drop_index("ix_oauth_states_expires", "oauth_states")
    op.drop_table("oauth_states")
