"""OAuth states bound to the browser (a nonce cookie's hash) and limited per user.

States saved before this revision have no browser hash: only their user's JWT (the POST
callback) can complete them, and they expire within ten minutes anyway.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("oauth_states") as batch:
        batch.add_column(sa.Column("browser_hash", sa.Text))
        batch.create_index("ix_oauth_states_user", ["user_id", "provider", "created_at"])


def downgrade() -> None:
    with op.batch_alter_table("oauth_states") as batch:
        batch.drop_index("ix_oauth_states_user")
        batch.drop_column("browser_hash")
