"""Which database errors say "this value cannot be stored", and how to say so safely.

A data error is the contact's fault and permanent: writing the same value again fails the same
way, so the page writer isolates the contact instead of retrying the job. Everything else
(a lost connection, a unique violation between two concurrent imports, a lost lease) is not a
data error and keeps its usual path.

Data errors come in several shapes, because some are raised by the database and some by the
driver before anything is sent:

- SQLSTATE class 22 (data exception: a NUL byte, a character the database encoding lacks, a
  value too long, a number out of range) and class 54 (program limit exceeded: an index row
  too large), from the server;
- psycopg's own ``DataError`` (NUL in text is refused client side, without a SQLSTATE) and
  sqlite3's (a string or row over SQLite's length limit);
- ``UnicodeError``: a lone surrogate, or a character the connection's encoding (say LATIN1)
  cannot represent, raised while the driver encodes a parameter or a COPY row;
- ``orjson.JSONEncodeError``: a JSON column value orjson cannot encode (a lone surrogate).

SQLAlchemy wraps some of these (``DataError``, or ``StatementError`` for bind processing) and
not others (errors raised inside psycopg's COPY, encoding errors): both are looked through.
"""

from __future__ import annotations

import sqlite3

import orjson
import psycopg
from sqlalchemy.exc import StatementError

__all__ = ["describe_data_error", "is_data_error"]

_DATA_SQLSTATE_CLASSES = frozenset({"22", "54"})
_DATA_ERRORS = (UnicodeError, orjson.JSONEncodeError, sqlite3.DataError, psycopg.DataError)
_MAX_DETAIL = 200


def is_data_error(exc: BaseException) -> bool:
    """Whether ``exc`` means a value of the statement cannot be stored (see the module doc)."""
    error = _driver_error(exc)
    if isinstance(error, _DATA_ERRORS):
        return True
    sqlstate = error.sqlstate if isinstance(error, psycopg.Error) else None
    return sqlstate is not None and sqlstate[:2] in _DATA_SQLSTATE_CLASSES


def describe_data_error(exc: BaseException) -> str:
    """A short ASCII description, without the statement or its parameters (contact data)."""
    error = _driver_error(exc)
    lines = str(error).strip().splitlines()
    # ASCII, so the text itself can be stored whatever the database encoding.
    first = lines[0].encode("ascii", "backslashreplace").decode("ascii") if lines else ""
    name = type(error).__name__
    return f"{name}: {first[:_MAX_DETAIL]}" if first else name


def _driver_error(exc: BaseException) -> BaseException:
    # SQLAlchemy's DBAPIError is a StatementError too; its message adds the SQL and the
    # parameters, which must not end up in an audit row or a log line.
    if isinstance(exc, StatementError) and exc.orig is not None:
        return exc.orig
    return exc
