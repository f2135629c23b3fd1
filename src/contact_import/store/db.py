"""Engines for SQLite (embedded) and Postgres, and running the migrations."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import orjson
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.engine import URL, Connection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.schema import CreateSchema

from contact_import.errors import ConfigError
from contact_import.store.namespace import db_schema, lock_seed
from contact_import.store.pooler import (
    PoolerSetting,
    detect_pooler,
    resolve_pooler,
    without_pooler_flag,
)
from contact_import.store.row_security import apply_contacts_read_policy

__all__ = [
    "create_db_engine",
    "database_answers",
    "dumps_json",
    "is_postgres",
    "listen_url",
    "normalize_database_url",
    "upgrade_database",
]

log = logging.getLogger("contact_import.db")

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
    """Accept the plain ``postgresql://`` / ``postgres://`` URLs Supabase and Heroku hand out.

    Prisma's ``?pgbouncer=true`` is understood (see ``store.pooler``) and removed, since libpq
    refuses parameters it does not know.
    """
    return without_pooler_flag(_parse_database_url(raw, "DATABASE_URL"))


def _parse_database_url(raw: str, name: str) -> URL:
    try:
        url = make_url(raw)
    except Exception as exc:
        raise ConfigError(f"{name} is not a valid database URL") from exc
    if url.drivername in ("postgres", "postgresql"):
        url = url.set(drivername="postgresql+psycopg")
    if url.get_backend_name() not in ("postgresql", "sqlite"):
        raise ConfigError(f"{name} must be a PostgreSQL or SQLite URL")
    return url


def is_postgres(engine: Engine | Connection) -> bool:
    return engine.dialect.name == "postgresql"


def database_answers(engine: Engine) -> bool:
    """Whether the database runs a trivial query now (for /healthz): never raises."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError:
        return False
    return True


def create_db_engine(
    raw_url: str,
    *,
    pool_size: int = 5,
    pooler: PoolerSetting = "auto",
    schema: str | None = None,
) -> Engine:
    """An engine with the per-backend settings the job queue relies on.

    ``pooler`` is ``DATABASE_POOLER``: what sits between us and Postgres (``auto``: ask the
    URL, see ``detect_pooler``). ``schema`` is ``DATABASE_SCHEMA`` (Postgres only: see
    ``store.namespace``).
    """
    parsed = _parse_database_url(raw_url, "DATABASE_URL")
    mode = resolve_pooler(parsed, pooler)
    url = without_pooler_flag(parsed)
    if url.get_backend_name() == "sqlite":
        if schema:
            raise ConfigError(
                "DATABASE_SCHEMA is for PostgreSQL; with SQLite give each deployment its own "
                "database file instead"
            )
        return _sqlite_engine(url)
    return _postgres_engine(url, pool_size, transaction_pooled=mode == "transaction", schema=schema)


def _postgres_engine(
    url: URL, pool_size: int, *, transaction_pooled: bool, schema: str | None
) -> Engine:
    connect_args: dict[str, Any] = {}
    if transaction_pooled:
        # Each transaction may run on another server connection, shared with other clients:
        # a statement psycopg prepared ("_pg3_0") is missing there, or exists under that
        # name for someone else, and executemany prepares on first use. None turns preparing
        # off for every statement, executemany included. Nothing else we do outlives a
        # transaction (advisory locks are xact-level, COPY runs inside the page's
        # transaction); LISTEN goes elsewhere (``listen_url``).
        connect_args["prepare_threshold"] = None
        log.info("DATABASE_URL is a transaction pooler: server-side prepared statements off")
    # Our tables are declared without a schema; this puts every statement SQLAlchemy
    # compiles, DDL included, in DATABASE_SCHEMA. Not search_path: poolers refuse `options`.
    options = {"schema_translate_map": {None: schema}} if schema else {}
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        connect_args=connect_args,
        execution_options=options,
    )


def listen_url(database_url: str, *, pooler: PoolerSetting, direct_url: str | None) -> str | None:
    """The libpq URL workers LISTEN on for new jobs, or None: poll only.

    LISTEN needs one server session for as long as it listens, which a transaction pooler
    does not give: ``direct_url`` (``DATABASE_DIRECT_URL``) when set, else the database
    itself unless it is behind a transaction pooler. NOTIFY needs no such thing: pg_notify
    is sent at commit, so it works through any pooler.
    """
    main = _parse_database_url(database_url, "DATABASE_URL")
    if main.get_backend_name() != "postgresql":
        return None
    if direct_url:
        return _libpq_url(_direct_url(direct_url))
    if resolve_pooler(main, pooler) == "transaction":
        return None
    return _libpq_url(main)


def _direct_url(raw: str) -> URL:
    url = _parse_database_url(raw, "DATABASE_DIRECT_URL")
    if url.get_backend_name() != "postgresql":
        raise ConfigError("DATABASE_DIRECT_URL must be a PostgreSQL URL")
    if detect_pooler(url) == "transaction":
        raise ConfigError(
            "DATABASE_DIRECT_URL goes through a transaction pooler; LISTEN needs a direct "
            "(or session-mode) connection"
        )
    return url


def _libpq_url(url: URL) -> str:
    plain = without_pooler_flag(url).set(drivername="postgresql")
    return plain.render_as_string(hide_password=False)


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


def upgrade_database(
    engine: Engine, *, contacts_read_policy: bool = False, revision: str = "head"
) -> None:
    """Run the Alembic migrations to ``revision`` (head); safe when several processes start
    at once.

    With ``DATABASE_SCHEMA`` the schema is created first if missing, and Alembic's version
    table lives in it too. ``contacts_read_policy`` (``SUPABASE_CONTACTS_POLICY``) then
    creates or replaces Supabase's read policy on ``contacts``; without it an existing policy
    is left as it is (see ``store.row_security``).
    """
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    with engine.begin() as conn:
        if is_postgres(conn):
            # One lock per schema: deployments in other schemas migrate on their own.
            key = _MIGRATION_LOCK_ID ^ lock_seed(conn)
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})
            if (schema := db_schema(conn)) is not None:
                _enter_schema(conn, schema)
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
        if contacts_read_policy:
            apply_contacts_read_policy(conn)


def _enter_schema(conn: Connection, schema: str) -> None:
    """Create the schema if missing and make it the only one this transaction searches.

    Alembic's ALTER TABLE and DROP INDEX do not apply the engine's schema_translate_map, nor
    would a migration's hand-written SQL. SET LOCAL ends with the migration's transaction,
    so it is fine behind a transaction pooler, and nothing else ever sets search_path.
    """
    conn.execute(CreateSchema(schema, if_not_exists=True))
    quoted = conn.dialect.identifier_preparer.quote_identifier(schema)
    conn.execute(text(f"SET LOCAL search_path TO {quoted}"))
