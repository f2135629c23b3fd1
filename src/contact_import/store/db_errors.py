"""The one place where SQLAlchemy and driver errors become errors of our tree (see errors.py).

``translate_db_error`` names only what a runner loop must treat differently: a database that
cannot be reached (``DatabaseUnavailable``: back off, reconnect, refund the attempt) and one
that refuses us for good (``DatabaseMisconfigured``: a runner cannot go on); anything else is
left as it is. ``as_store_error`` also names the rest (``StatementFailed``: a deadlock, a key
two imports raced on, …), for the importer, which retries the job with the attempt counted and
classifies its failure from our tree alone.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg
from sqlalchemy import exc as sa_exc

from contact_import.errors import (
    DatabaseMisconfigured,
    DatabaseUnavailable,
    StatementFailed,
    StoreError,
)

__all__ = ["as_store_error", "map_db_errors", "schema_missing", "translate_db_error"]

# admin_shutdown, crash_shutdown, cannot_connect_now, too_many_connections; class 08 is
# "connection exception" as a whole.
_UNAVAILABLE_STATES = frozenset({"57P01", "57P02", "57P03", "53300"})
# undefined_table/column, invalid_schema_name: our tables are not (all) there, or a migration
# has not run.
_SCHEMA_MISSING_STATES = frozenset({"42P01", "42703", "3F000"})
# invalid_catalog_name, insufficient_privilege, undefined_function (a Postgres too old for us);
# class 28 is "invalid authorization".
_MISCONFIGURED_STATES = _SCHEMA_MISSING_STATES | {"3D000", "42501", "42883"}
# libpq reports a refused connection without a SQLSTATE: only its text tells these apart from
# a server that is merely down or starting.
_REFUSED_FOR_GOOD = (
    "authentication failed",
    "does not exist",
    "no pg_hba.conf entry",
    "permission denied",
)
_SQLITE_MISSING = ("no such table", "no such column")
_SQLITE_UNAVAILABLE = ("unable to open database file", "disk i/o error")


def translate_db_error(exc: BaseException) -> BaseException:
    """Our tree's error for ``exc`` (chained to it), or ``exc`` itself if the tree has none."""
    if isinstance(exc, StoreError):
        return exc
    if isinstance(exc, sa_exc.DisconnectionError | sa_exc.TimeoutError):
        return _chained(DatabaseUnavailable(f"database unavailable ({_summary(exc)})"), exc)
    driver = exc.orig if isinstance(exc, sa_exc.DBAPIError) else exc
    kind = _classify(driver)
    if kind is None and isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        kind = DatabaseUnavailable  # SQLAlchemy saw the connection die
    if kind is None:
        return exc
    summary = _summary(driver or exc)
    if kind is DatabaseUnavailable:
        return _chained(DatabaseUnavailable(f"database unavailable ({summary})"), exc)
    if schema_missing(driver):
        message = f"the database schema is missing ({summary}): run `contact-import db upgrade`"
        return _chained(DatabaseMisconfigured(message), exc)
    return _chained(DatabaseMisconfigured(f"the database refused us ({summary})"), exc)


def as_store_error(exc: BaseException) -> BaseException:
    """``translate_db_error``, and any other SQLAlchemy error as ``StatementFailed``.

    Its message names the error's class only: the driver's text may quote contact data.
    """
    translated = translate_db_error(exc)
    if translated is exc and isinstance(exc, sa_exc.SQLAlchemyError):
        return _chained(StatementFailed(f"database error ({type(exc).__name__})"), exc)
    return translated


@contextmanager
def map_db_errors(
    translate: Callable[[BaseException], BaseException] = translate_db_error,
) -> Iterator[None]:
    """Raise our tree's error instead of a driver error ``translate`` has a name for."""
    try:
        yield
    except (sa_exc.SQLAlchemyError, psycopg.Error, sqlite3.Error) as exc:
        translated = translate(exc)
        if translated is exc:
            raise
        raise translated from exc


def _classify(error: BaseException | None) -> type[StoreError] | None:
    if isinstance(error, psycopg.Error):
        return _classify_postgres(error)
    if isinstance(error, sqlite3.OperationalError):
        text = str(error).lower()
        if text.startswith(_SQLITE_MISSING):
            return DatabaseMisconfigured
        if text.startswith(_SQLITE_UNAVAILABLE):
            return DatabaseUnavailable
    return None


def _classify_postgres(error: psycopg.Error) -> type[StoreError] | None:
    state = error.sqlstate
    if state is not None:
        return _classify_state(state)
    # No SQLSTATE: libpq itself failed (connect, or the socket died), except a pipeline that
    # aborted because an earlier statement failed: that says nothing about the server.
    if isinstance(error, psycopg.errors.PipelineAborted):
        return None
    if not isinstance(error, psycopg.OperationalError | psycopg.InterfaceError):
        return None
    if any(marker in str(error) for marker in _REFUSED_FOR_GOOD):
        return DatabaseMisconfigured
    return DatabaseUnavailable


def schema_missing(error: BaseException | None) -> bool:
    """Our tables (or a column a migration adds) are missing: `db upgrade` would help."""
    if isinstance(error, sa_exc.DBAPIError):
        error = error.orig
    if isinstance(error, psycopg.Error):
        return error.sqlstate in _SCHEMA_MISSING_STATES
    return isinstance(error, sqlite3.OperationalError) and str(error).startswith(_SQLITE_MISSING)


def _classify_state(state: str) -> type[StoreError] | None:
    if state in _UNAVAILABLE_STATES or state.startswith("08"):
        return DatabaseUnavailable
    if state in _MISCONFIGURED_STATES or state.startswith("28"):
        return DatabaseMisconfigured
    return None


def _summary(error: BaseException) -> str:
    """The first line of a driver message: what happened, without the SQL or its parameters."""
    lines = str(error).strip().splitlines()
    first = lines[0] if lines else ""
    return first[:300] or type(error).__name__


def _chained(error: StoreError, cause: BaseException) -> StoreError:
    error.__cause__ = cause
    return error
