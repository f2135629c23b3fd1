"""Engines for SQLite (embedded) and Postgres, and running the migrations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.engine import URL, Connection

from contact_import.errors import ConfigError

__all__ = [
    "create_db_engine",
    "dumps_json",
    "is_postgres",
    "normalize_database_url",
    "upgrade_database",
]

_MIGRATIONS = Path(__file__).parent / "migrations"
# Any constant works: it only has to be the same in every process that migrates.
_MIGRATION_LOCK_ID = 7_355_608
# Rows per multi-row INSERT: a 1,000-contact page (~2,500 match keys) is one statement per
# table, and the widest row (8 columns) stays far under both backends' parameter limits.
_ROWS_PER_INSERT = 5000


def dumps_json(value: Any) -> str:
    """JSON columns are read and written with orjson: it is the hot path of every page."""
    return orjson.dumps(value).decode()


def normalize_database_url(raw: str) -> URL:
    """Accept the plain ``postgresql://`` / ``postgres://`` URLs Supabase and Heroku hand out."""
    try:
        url = make_url(raw)
    except Exception as exc:
        raise ConfigError("DATABASE_URL is not a valid database URL") from exc
    if url.drivername in ("postgres", "postgresql"):
        url = url.set(drivername="postgresql+psycopg")
    if url.get_backend_name() not in ("postgresql", "sqlite"):
        raise ConfigError("DATABASE_URL must be a PostgreSQL or SQLite URL")
    return url


def is_postgres(engine: Engine | Connection) -> bool:
    return engine.dialect.name == "postgresql"


def create_db_engine(raw_url: str, *, pool_size: int = 5) -> Engine:
    """An engine with the per-backend settings the job queue relies on."""
    url = normalize_database_url(raw_url)
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url)
    return create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


def _sqlite_engine(url: URL) -> Engine:
    if url.database and url.database != ":memory:":
        Path(url.database).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        connect_args={"timeout": 30, "check_same_thread": False},
        insertmanyvalues_page_size=_ROWS_PER_INSERT,
        json_serializer=dumps_json,
        json_deserializer=orjson.loads,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # We issue BEGIN ourselves (below); the driver must not start transactions on its own.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        for pragma in (
            "journal_mode=WAL",
            "synchronous=NORMAL",
            "foreign_keys=ON",
            "busy_timeout=30000",
        ):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # IMMEDIATE takes the write lock at BEGIN, so two processes never both read, then both
        # try to upgrade to a write lock (SQLITE_BUSY that busy_timeout cannot resolve). This is
        # what makes our claim a single atomic step on SQLite.
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def upgrade_database(engine: Engine) -> None:
    """Run the Alembic migrations to head; safe when several processes start at once."""
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    with engine.begin() as conn:
        if is_postgres(conn):
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK_ID})
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
