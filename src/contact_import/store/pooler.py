"""Connection poolers between us and Postgres: which kind a URL goes through (pure, no I/O).

A *transaction* pooler (PgBouncer ``pool_mode=transaction``, Supabase's pooled port 6543,
Neon's ``-pooler`` hosts) lends a server connection for one transaction only, so nothing may
outlive a transaction: no server-side prepared statements, no LISTEN. A *session* pooler
lends one for the whole client connection and behaves like a direct connection.
"""

from __future__ import annotations

from typing import Literal

from sqlalchemy.engine import URL

from contact_import.errors import ConfigError
from contact_import.settings import PoolerSetting

__all__ = [
    "PGBOUNCER_FLAG",
    "Pooler",
    "PoolerSetting",
    "detect_pooler",
    "resolve_pooler",
    "without_pooler_flag",
]

Pooler = Literal["none", "session", "transaction"]

# Prisma's convention (``?pgbouncer=true``), which Supabase documents for its pooled URL.
# libpq rejects unknown URL parameters, so it is removed before connecting.
PGBOUNCER_FLAG = "pgbouncer"
_SUPABASE_TRANSACTION_PORT = 6543


def detect_pooler(url: URL) -> Pooler:
    """What ``DATABASE_POOLER=auto`` concludes from the URL alone.

    ``?pgbouncer=true``; Supabase's shared pooler ``*.pooler.supabase.com`` (port 6543:
    transaction, other ports: session) and its dedicated PgBouncer (``*.supabase.co:6543``);
    Neon's pooled hosts (``ep-…-pooler.….neon.tech``). Anything else: no pooler.
    """
    if _flag(url) in ("true", "1"):
        return "transaction"
    host = (url.host or "").lower()
    port = url.port or 5432
    if host.endswith(".pooler.supabase.com"):
        return "transaction" if port == _SUPABASE_TRANSACTION_PORT else "session"
    if host.endswith(".supabase.co") and port == _SUPABASE_TRANSACTION_PORT:
        return "transaction"
    if host.endswith(".neon.tech") and host.split(".", 1)[0].endswith("-pooler"):
        return "transaction"
    return "none"


def resolve_pooler(url: URL, setting: PoolerSetting, *, name: str = "DATABASE_URL") -> Pooler:
    """The pooler in front of ``url``: the setting when explicit, else what the URL says."""
    if url.get_backend_name() != "postgresql":
        if setting in ("session", "transaction"):
            raise ConfigError(f"DATABASE_POOLER={setting} needs a PostgreSQL {name}")
        return "none"
    return detect_pooler(url) if setting == "auto" else setting


def without_pooler_flag(url: URL) -> URL:
    return url.difference_update_query([PGBOUNCER_FLAG])


def _flag(url: URL) -> str | None:
    value = url.query.get(PGBOUNCER_FLAG)
    if isinstance(value, tuple):
        value = value[-1] if value else None
    return value.strip().lower() if value is not None else None
