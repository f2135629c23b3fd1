"""The webhook outbox (events and their delivery attempts) and the index retention needs.

Revision ID: 0007_webhooks
Revises: 0006_rls
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from contact_import.store.row_security import enable_row_level_security
from contact_import.store.schema import UTCDateTime

revision = "0007_webhooks"
down_revision = "0006_rls"
branch_labels = None
depends_on = None

PENDING = sa.text("status = 'pending'")


def upgrade() -> None:
    op.create_index("ix_contact_import_jobs_completed", "contact_import_jobs", ["completed_at"])
    op.create_table(
        "webhook_events",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("job_id", sa.Uuid),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("next_attempt_at", UTCDateTime, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("status", sa.Text, nullable=False, server_default=sa.text("'pending'")),
        sa.Column("locked_by", sa.Text),
        sa.Column("lease_expires_at", UTCDateTime),
        sa.Column("delivered_at", UTCDateTime),
        sa.Column("last_error", sa.Text),
        sa.CheckConstraint(
            "status IN ('pending', 'delivered', 'gave_up')", name="ck_webhook_events_status"
        ),
    )
    op.create_index(
        "ix_webhook_events_due",
        "webhook_events",
        ["next_attempt_at"],
        postgresql_where=PENDING,
        sqlite_where=PENDING,
    )
    op.create_index("ix_webhook_events_job", "webhook_events", ["job_id", "created_at"])
    op.create_index("ix_webhook_events_delivered", "webhook_events", ["delivered_at"])
    op.create_table(
        "webhook_attempts",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column(
            "event_id",
            sa.Text,
            sa.ForeignKey("webhook_events.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("attempted_at", UTCDateTime, nullable=False),
        sa.Column("status_code", sa.Integer),
        sa.Column("duration_ms", sa.Integer, nullable=False),
        sa.Column("error", sa.Text),
    )
    op.create_index("ix_webhook_attempts_event", "webhook_attempts", ["event_id", "attempted_at"])
    enable_row_level_security(op.get_bind(), ["webhook_events", "webhook_attempts"])


def downgrade() -> None:
    op.drop_table("webhook_attempts")
    op.drop_table("webhook_events")
    op.drop_index("ix_contact_import_jobs_completed", "contact_import_jobs")
