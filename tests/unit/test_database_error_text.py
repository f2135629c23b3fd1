"""The CLI's one-line database errors: `db upgrade` is suggested only when tables are missing."""

from __future__ import annotations

import pytest
from psycopg import errors as pg
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError

from contact_import.cli.common import database_error_message

_HINT = "contact-import db upgrade"


def _sqlite_error(sql: str) -> DBAPIError:
    """A real error from SQLite (in memory, no tables)."""
    engine = create_engine("sqlite://")
    try:
        with engine.connect() as conn, pytest.raises(DBAPIError) as caught:
            conn.execute(text(sql))
    finally:
        engine.dispose()
    return caught.value


def _postgres_error(cls: type[DBAPIError], orig: Exception) -> DBAPIError:
    """How SQLAlchemy wraps a psycopg error of that SQLSTATE."""
    return cls("SELECT …", {}, orig)


def test_a_missing_table_on_postgres_suggests_db_upgrade() -> None:
    orig = pg.UndefinedTable('relation "contact_import_jobs" does not exist')
    message = database_error_message(_postgres_error(ProgrammingError, orig))
    assert _HINT in message
    assert 'relation "contact_import_jobs" does not exist' in message


def test_a_missing_table_on_sqlite_suggests_db_upgrade() -> None:
    message = database_error_message(_sqlite_error("SELECT * FROM contact_import_jobs"))
    assert _HINT in message
    assert "no such table: contact_import_jobs" in message


@pytest.mark.parametrize(
    "orig",
    [
        pg.DuplicatePreparedStatement('prepared statement "_pg3_4" already exists'),
        pg.InvalidSqlStatementName('prepared statement "_pg3_0" does not exist'),
        pg.UndefinedFunction("function hashtextextended(text, integer) does not exist"),
    ],
)
def test_other_programming_errors_do_not_point_at_the_schema(orig: Exception) -> None:
    message = database_error_message(_postgres_error(ProgrammingError, orig))
    assert message == f"database error: {orig}"
    assert "upgrade" not in message


def test_connection_failures_do_not_point_at_the_schema() -> None:
    orig = pg.OperationalError("connection failed: the database system is shutting down")
    message = database_error_message(_postgres_error(OperationalError, orig))
    assert message == (
        "cannot use the database: connection failed: the database system is shutting down"
    )
    sqlite = database_error_message(_sqlite_error("SELEC 1"))
    assert sqlite.startswith("cannot use the database: ")
    assert "upgrade" not in sqlite
