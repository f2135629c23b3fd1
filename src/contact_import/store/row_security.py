"""Row level security (Postgres): what Supabase's REST API may read of our tables.

Supabase exposes the tables of ``public`` through PostgREST to the ``anon`` and
``authenticated`` roles, which its default privileges grant every table. With RLS enabled
and no policy, those roles read and write nothing; the service's own role owns the tables,
so RLS does not apply to it (it is enabled, never FORCEd). The migrations enable it on every
table they create (``enable_row_level_security``); ``SUPABASE_CONTACTS_POLICY`` adds the one
policy we offer: signed-in users read their own contacts (``apply_contacts_read_policy``).
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, text

from contact_import.errors import ConfigError
from contact_import.store.namespace import db_schema, quoted_table

__all__ = [
    "CONTACTS_READ_POLICY",
    "apply_contacts_read_policy",
    "disable_row_level_security",
    "enable_row_level_security",
]

CONTACTS_READ_POLICY = "contacts_owner_read"


def enable_row_level_security(conn: Connection, tables: Iterable[str]) -> None:
    """ENABLE (not FORCE) row level security on ``tables``; nothing on SQLite."""
    _alter(conn, tables, "ENABLE")


def disable_row_level_security(conn: Connection, tables: Iterable[str]) -> None:
    _alter(conn, tables, "DISABLE")


def _alter(conn: Connection, tables: Iterable[str], action: str) -> None:
    if not _is_postgres(conn):
        return
    for table in tables:
        conn.execute(text(f"ALTER TABLE {quoted_table(conn, table)} {action} ROW LEVEL SECURITY"))


def apply_contacts_read_policy(conn: Connection) -> None:
    """Let Supabase's ``authenticated`` users read their own rows of ``contacts`` (only read:
    the service writes them). Replaces the policy if it exists; needs Supabase's role and its
    ``auth.uid()``, the user id of the request's JWT."""
    if not _is_postgres(conn):
        raise ConfigError("SUPABASE_CONTACTS_POLICY needs PostgreSQL (Supabase)")
    _require_supabase_auth(conn)
    table = quoted_table(conn, "contacts")
    conn.execute(text(f"DROP POLICY IF EXISTS {CONTACTS_READ_POLICY} ON {table}"))
    # (select auth.uid()): evaluated once per statement, not once per row (Supabase's advice).
    conn.execute(
        text(
            f"CREATE POLICY {CONTACTS_READ_POLICY} ON {table} FOR SELECT TO authenticated "
            "USING (user_id = (SELECT auth.uid())::text)"
        )
    )
    if (schema := db_schema(conn)) is not None:
        quote = conn.dialect.identifier_preparer.quote_identifier
        conn.execute(text(f"GRANT USAGE ON SCHEMA {quote(schema)} TO authenticated"))
    conn.execute(text(f"GRANT SELECT ON {table} TO authenticated"))


def _is_postgres(conn: Connection) -> bool:
    # Not store.db.is_postgres: store.db runs this module after the migrations.
    return conn.dialect.name == "postgresql"


def _require_supabase_auth(conn: Connection) -> None:
    found = conn.execute(
        text(
            "SELECT to_regrole('authenticated') IS NOT NULL "
            "AND to_regprocedure('auth.uid()') IS NOT NULL"
        )
    ).scalar_one()
    if not found:
        raise ConfigError(
            "SUPABASE_CONTACTS_POLICY needs Supabase's `authenticated` role and `auth.uid()` "
            "function, which this database does not have"
        )
