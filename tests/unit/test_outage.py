"""Surviving an outage, without waiting: backoff, once-per-outage logging, error translation."""

from __future__ import annotations

import logging
import sqlite3

import psycopg
import pytest
from sqlalchemy import exc as sa_exc

from contact_import.errors import DatabaseMisconfigured, DatabaseUnavailable
from contact_import.runner.outage import Backoff, OutageWatch
from contact_import.store.db_errors import map_db_errors, translate_db_error

log = logging.getLogger("test.outage")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("jitter", [0.0, 0.5, 0.999])
def test_backoff_grows_from_first_to_cap_and_never_past_it(jitter: float) -> None:
    backoff = Backoff(first=0.1, cap=2.0, jitter=lambda: jitter)
    delays = [backoff.next_delay() for _ in range(40)]
    ceilings = [min(2.0, 0.1 * 2**n) for n in range(40)]
    for delay, ceiling in zip(delays, ceilings, strict=True):
        assert ceiling / 2 <= delay <= ceiling
    assert max(delays) <= 2.0
    assert delays[-1] >= 1.0  # at the cap, jitter only halves it at most


def test_backoff_reset_starts_over() -> None:
    backoff = Backoff(jitter=lambda: 1.0)
    for _ in range(10):
        backoff.next_delay()
    backoff.reset()
    assert backoff.next_delay() == pytest.approx(0.1)


def _records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "test.outage"]


def test_an_outage_is_logged_once_however_many_tries_fail(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    watch = OutageWatch(log, clock=clock, backoff=Backoff(jitter=lambda: 0.0))
    error = DatabaseUnavailable("database unavailable (connection refused)")
    waited = 0.0
    for _ in range(25):
        delay = watch.failed(error)
        waited += delay
        clock.now += delay
    gone = _records(caplog)
    assert [r.levelno for r in gone] == [logging.WARNING]
    assert gone[0].getMessage() == "database unavailable; retrying until it is back"
    assert gone[0].error == "database unavailable (connection refused)"  # type: ignore[attr-defined]
    assert waited <= 25 * 2.0

    watch.recovered()
    back = _records(caplog)[1:]
    assert [r.getMessage() for r in back] == ["database is back"]
    assert back[0].down_seconds == pytest.approx(waited, abs=0.01)  # type: ignore[attr-defined]
    assert back[0].failed_tries == 25  # type: ignore[attr-defined]


def test_good_tries_log_nothing_and_a_new_outage_is_logged_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    watch = OutageWatch(log, clock=clock)
    for _ in range(3):
        watch.recovered()
    assert _records(caplog) == []
    for _ in range(2):
        watch.failed(DatabaseUnavailable("first outage"))
        watch.failed(DatabaseUnavailable("first outage"))
        clock.now += 5
        watch.recovered()
    messages = [r.getMessage() for r in _records(caplog)]
    assert messages == [
        "database unavailable; retrying until it is back",
        "database is back",
        "database unavailable; retrying until it is back",
        "database is back",
    ]
    # The backoff starts over after a recovery: the next outage is retried quickly again.
    assert watch.failed(DatabaseUnavailable("again")) <= 0.1


def _sa(error: Exception, *, invalidated: bool = False) -> sa_exc.DBAPIError:
    base = sqlite3.Error if isinstance(error, sqlite3.Error) else psycopg.Error
    wrapped = sa_exc.DBAPIError.instance(
        "SELECT 1", {}, error, base, connection_invalidated=invalidated
    )
    assert isinstance(wrapped, sa_exc.DBAPIError)
    return wrapped


REFUSED = (
    'connection failed: connection to server at "127.0.0.1", port 5999 failed: '
    "Connection refused\n\tIs the server running on that host?"
)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (psycopg.errors.AdminShutdown("terminating connection"), DatabaseUnavailable),
        (
            psycopg.errors.CannotConnectNow("the database system is starting up"),
            DatabaseUnavailable,
        ),
        (psycopg.errors.TooManyConnections("too many clients"), DatabaseUnavailable),
        (psycopg.errors.ConnectionFailure("connection failure"), DatabaseUnavailable),
        (psycopg.OperationalError(REFUSED), DatabaseUnavailable),
        (
            psycopg.OperationalError("... FATAL:  the database system is shutting down"),
            DatabaseUnavailable,
        ),
        (
            psycopg.OperationalError("consuming input failed: server closed the connection"),
            DatabaseUnavailable,
        ),
        (psycopg.InterfaceError("the connection is closed"), DatabaseUnavailable),
        (
            psycopg.OperationalError('FATAL:  password authentication failed for user "app"'),
            DatabaseMisconfigured,
        ),
        (psycopg.OperationalError('FATAL:  database "app" does not exist'), DatabaseMisconfigured),
        (
            psycopg.errors.UndefinedTable('relation "contact_import_jobs" does not exist'),
            DatabaseMisconfigured,
        ),
        (psycopg.errors.InsufficientPrivilege("permission denied"), DatabaseMisconfigured),
        (sqlite3.OperationalError("no such table: contact_import_jobs"), DatabaseMisconfigured),
        (sqlite3.OperationalError("unable to open database file"), DatabaseUnavailable),
    ],
)
def test_driver_errors_the_runner_must_treat_apart_are_translated(
    error: Exception, expected: type[Exception]
) -> None:
    for raised in (error, _sa(error)):
        translated = translate_db_error(raised)
        assert type(translated) is expected
        assert translated.__cause__ is raised
        assert "SELECT" not in str(translated)  # the statement stays out of the message


@pytest.mark.parametrize(
    "error",
    [
        psycopg.errors.DeadlockDetected("deadlock detected"),
        psycopg.errors.UniqueViolation("duplicate key"),
        psycopg.errors.UntranslatableCharacter("unsupported Unicode escape sequence"),
        psycopg.errors.PipelineAborted("pipeline aborted"),
        sqlite3.OperationalError("database is locked"),
    ],
)
def test_other_errors_are_left_alone(error: Exception) -> None:
    assert translate_db_error(error) is error
    wrapped = _sa(error)
    assert translate_db_error(wrapped) is wrapped


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (
            psycopg.errors.UndefinedTable('relation "contact_import_jobs" does not exist'),
            'the database schema is missing (relation "contact_import_jobs" does not exist): '
            "run `contact-import db upgrade`",
        ),
        (
            sqlite3.OperationalError("no such table: contact_import_jobs"),
            "the database schema is missing (no such table: contact_import_jobs): "
            "run `contact-import db upgrade`",
        ),
        (
            psycopg.OperationalError('FATAL:  password authentication failed for user "app"'),
            'the database refused us (FATAL:  password authentication failed for user "app")',
        ),
        (
            psycopg.errors.InsufficientPrivilege("permission denied for table contacts"),
            "the database refused us (permission denied for table contacts)",
        ),
    ],
)
def test_only_a_missing_schema_says_to_run_db_upgrade(error: Exception, message: str) -> None:
    assert str(translate_db_error(_sa(error))) == message


def test_what_is_not_a_database_error_is_left_alone() -> None:
    error = ValueError("not a database error")
    assert translate_db_error(error) is error


def test_a_connection_sqlalchemy_saw_die_is_an_outage() -> None:
    wrapped = _sa(psycopg.errors.DeadlockDetected("odd"), invalidated=True)
    assert isinstance(translate_db_error(wrapped), DatabaseUnavailable)
    assert isinstance(
        translate_db_error(sa_exc.TimeoutError("QueuePool limit")), DatabaseUnavailable
    )


def test_map_db_errors_raises_the_translation_and_lets_the_rest_through() -> None:
    with pytest.raises(DatabaseUnavailable, match="Connection refused"), map_db_errors():
        raise _sa(psycopg.OperationalError(REFUSED))
    with pytest.raises(sa_exc.DBAPIError), map_db_errors():
        raise _sa(psycopg.errors.DeadlockDetected("deadlock detected"))
