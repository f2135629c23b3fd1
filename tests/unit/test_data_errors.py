"""Which database errors mean "this contact's value cannot be stored" (isolate it, permanently)
and which keep the job-level path (retry later): the errors as the drivers really raise them."""

from __future__ import annotations

import sqlite3

import orjson
import psycopg
import psycopg.errors
import pytest
from sqlalchemy import exc as sa_exc

from contact_import.errors import LeaseLost
from contact_import.store.data_errors import describe_data_error, is_data_error


def wrapped(error: Exception, cls: type[sa_exc.DBAPIError] = sa_exc.DataError) -> Exception:
    """As SQLAlchemy raises a driver error: with the statement and the contact's values."""
    return cls("INSERT INTO contacts VALUES (%(name)s)", {"name": "Ada Secret"}, error)


def orjson_error() -> Exception:
    try:
        orjson.dumps("\ud800")
    except orjson.JSONEncodeError as exc:
        return exc
    raise AssertionError("orjson encoded a lone surrogate")


def encode_error() -> Exception:
    try:
        "山田".encode("latin-1")
    except UnicodeEncodeError as exc:
        return exc
    raise AssertionError("unreachable")


@pytest.mark.parametrize(
    "error",
    [
        psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes"),
        psycopg.errors.UntranslatableCharacter("character has no equivalent in LATIN1"),
        psycopg.errors.StringDataRightTruncation("value too long for type character varying(5)"),
        psycopg.errors.ProgramLimitExceeded("index row size 3000 exceeds btree maximum 2704"),
        wrapped(psycopg.errors.CharacterNotInRepertoire("invalid byte sequence")),
        wrapped(psycopg.errors.ProgramLimitExceeded("index row too big"), sa_exc.OperationalError),
        wrapped(sqlite3.DataError("string or blob too big")),
        sqlite3.DataError("string or blob too big"),
        encode_error(),
        orjson_error(),
        sa_exc.StatementError("bind failed", "INSERT …", {"emails": ["x"]}, orjson_error()),
    ],
    ids=[
        "psycopg-nul", "untranslatable", "too-long", "index-row", "wrapped-22", "wrapped-54",
        "wrapped-sqlite", "sqlite", "encoding", "orjson", "bind-orjson",
    ],
)  # fmt: skip
def test_data_errors_are_recognized(error: Exception) -> None:
    assert is_data_error(error)


@pytest.mark.parametrize(
    "error",
    [
        wrapped(psycopg.errors.UniqueViolation("duplicate key"), sa_exc.IntegrityError),
        psycopg.errors.UniqueViolation("duplicate key (a concurrent import)"),
        wrapped(psycopg.OperationalError("connection failed"), sa_exc.OperationalError),
        psycopg.errors.AdminShutdown("terminating connection due to administrator command"),
        psycopg.errors.SerializationFailure("could not serialize access"),
        wrapped(sqlite3.OperationalError("database is locked"), sa_exc.OperationalError),
        sa_exc.StatementError("bind failed", "UPDATE …", {}, ValueError("naive datetime")),
        LeaseLost("lost the lease"),
        RuntimeError("a bug"),
    ],
    ids=[
        "integrity", "unique", "connection", "shutdown", "serialization", "sqlite-locked",
        "bind-bug", "lease-lost", "bug",
    ],
)  # fmt: skip
def test_other_errors_keep_their_job_level_path(error: Exception) -> None:
    assert not is_data_error(error)


def test_the_description_leaves_out_the_statement_and_the_values() -> None:
    error = wrapped(psycopg.errors.UntranslatableCharacter('character "\u5c71" has no equivalent'))
    text = describe_data_error(error)
    assert text == 'UntranslatableCharacter: character "\\u5c71" has no equivalent'
    assert "Ada Secret" not in text
    assert "INSERT" not in text
    assert text.isascii()


def test_the_description_of_an_encoding_error_is_ascii() -> None:
    assert describe_data_error(encode_error()) == (
        "UnicodeEncodeError: 'latin-1' codec can't encode characters in position 0-1: "
        "ordinal not in range(256)"
    )
    assert describe_data_error(psycopg.DataError()) == "DataError"
