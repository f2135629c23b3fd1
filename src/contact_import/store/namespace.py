"""Where one deployment's objects live in a shared Postgres database (``DATABASE_SCHEMA``).

Every table, index and query goes through SQLAlchemy, which puts it in the schema by itself:
the engine carries ``schema_translate_map={None: schema}`` (``store.db.create_db_engine``),
which applies to DDL as well (the page's one write statement included). What is spelled by
hand must ask here instead: SQLite's versions upsert (``quoted_table``), the NOTIFY channel
(``notify_channel``: two deployments do not wake each other's workers) and the advisory lock
keys (``lock_seed``: they do not wait on each other's locks). No ``search_path`` is set
anywhere: transaction poolers refuse it.

Without ``DATABASE_SCHEMA`` nothing is qualified (the connection's default schema, as before),
and the channel and lock keys are those of earlier releases, so a rolling upgrade of a
deployment keeps sharing them with its older processes.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import Connection, Engine

__all__ = [
    "NOTIFY_CHANNEL",
    "db_schema",
    "lock_seed",
    "notify_channel",
    "quoted_table",
]

# The channel of the default schema: the name earlier releases used.
NOTIFY_CHANNEL = "contact_import_jobs"
_MAX_IDENTIFIER = 63  # NAMEDATALEN - 1: longer channel names are refused by pg_notify


def db_schema(bind: Engine | Connection) -> str | None:
    """The schema this engine (or connection) keeps its tables in; None: the default one."""
    translate = bind.get_execution_options().get("schema_translate_map") or {}
    schema = translate.get(None)
    return str(schema) if schema else None


def quoted_table(bind: Engine | Connection, table: str) -> str:
    """``table`` quoted for SQL text (migrations' ``op.execute``), schema-qualified if any."""
    quote = bind.dialect.identifier_preparer.quote_identifier
    schema = db_schema(bind)
    return f"{quote(schema)}.{quote(table)}" if schema else quote(table)


def notify_channel(schema: str | None) -> str:
    """The NOTIFY channel of the deployment in ``schema`` (at most 63 bytes, as Postgres wants)."""
    if schema is None:
        return NOTIFY_CHANNEL
    channel = f"{NOTIFY_CHANNEL}.{schema}"
    if len(channel) <= _MAX_IDENTIFIER:
        return channel
    return f"{NOTIFY_CHANNEL}.{hashlib.sha256(schema.encode()).hexdigest()[:32]}"


def lock_seed(bind: Engine | Connection) -> int:
    """The seed of ``hashtextextended`` for our advisory lock keys: 0 in the default schema,
    else a signed 64-bit number derived from the schema's name."""
    schema = db_schema(bind)
    if schema is None:
        return 0
    digest = hashlib.sha256(f"contact-import-locks:{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)
