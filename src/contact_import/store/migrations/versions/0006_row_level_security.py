"""Row level security on every table (Postgres): Supabase's REST API sees none of them.

Supabase grants its ``anon`` and ``authenticated`` roles every table of ``public``; with RLS
on and no policy they read and write nothing. The service's own role owns the tables, so RLS
does not apply to it (enabled, not forced). ``SUPABASE_CONTACTS_POLICY`` adds a read policy
on ``contacts`` (``store.row_security``).

A migration that creates a table enables RLS on it too (``enable_row_level_security``);
``tests/integration/test_row_level_security.py`` fails for any table of the schema without it.

Revision ID: 0006_rls
Revises: 0003
Create Date: 2026-12-13
"""

from __future__ import annotations

from alembic import context, op

from contact_import.store.row_security import (
    disable_row_level_security,
    enable_row_level_security,
)

revision = "0006_rls"
down_revision = "0003"
branch_labels = None
depends_on = None

# Every table the migrations before this one create, and Alembic's own.
TABLES = (
    "provider_grants",
    "oauth_states",
    "contact_import_jobs",
    "contacts",
    "contact_match_keys",
    "imported_contacts",
)


def _tables() -> tuple[str, ...]:
    return (*TABLES, context.get_context().version_table)


def upgrade() -> None:
    enable_row_level_security(op.get_bind(), _tables())


def downgrade() -> None:
    disable_row_level_security(op.get_bind(), _tables())
