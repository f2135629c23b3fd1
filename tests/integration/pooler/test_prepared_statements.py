"""Server-side prepared statements through a transaction pooler: what breaks, and that ours are off.

Behind a PgBouncer with ONE server connection (``default_pool_size = 1``) every client's
transactions run on the same server session, so a collision is certain, not a matter of luck.
(psycopg names statements ``_pg3_0``, ``_pg3_1``… per client connection, and its rollback —
SQLAlchemy's reset on return to the pool — sends DEALLOCATE ALL outside any transaction, which
a transaction pooler hands to whichever server connection is free.)
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from contact_import.store.db import create_db_engine
from contact_import.store.pooler import PoolerSetting
from tests.integration.pooler.conftest import database_name
from tests.pgbouncer import RunningPgBouncer, start_pgbouncer

pytestmark = pytest.mark.postgres

# The shape of the page write's UPDATE of merged contacts: one statement, many parameter sets.
_UPDATE = text("UPDATE probe SET n = n + :d WHERE id = :id")
_ROWS = [{"d": 1, "id": i} for i in range(1, 11)]


@pytest.fixture(scope="module")
def one_server(pgbouncer_binary: str) -> Iterator[RunningPgBouncer]:
    with start_pgbouncer(pgbouncer_binary, pool_mode="transaction", pool_size=1) as running:
        yield running


@pytest.fixture
def one_server_url(pg_database_url: str, one_server: RunningPgBouncer) -> str:
    with psycopg.connect(pg_database_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE probe (id int PRIMARY KEY, n int NOT NULL)")
        conn.execute("INSERT INTO probe SELECT g, 0 FROM generate_series(1, 10) AS g")
    return one_server.url(database_name(pg_database_url))


def _two_clients_update(url: str, pooler: PoolerSetting, rounds: int = 3) -> None:
    """Two engines (two clients of the pooler) take turns running the executemany UPDATE."""
    first, second = create_db_engine(url, pooler=pooler), create_db_engine(url, pooler=pooler)
    try:
        for _ in range(rounds):
            for engine in (first, second):
                with engine.begin() as conn:
                    conn.execute(_UPDATE, _ROWS)
    finally:
        first.dispose()
        second.dispose()


def test_psycopg_defaults_collide_on_a_shared_server_connection(one_server_url: str) -> None:
    """The control: with the pooler not declared, psycopg prepares and the pooler breaks it."""
    with pytest.raises(DBAPIError, match='prepared statement "_pg3_0"'):
        _two_clients_update(one_server_url, "none")


def test_the_pooled_engine_prepares_nothing(one_server_url: str) -> None:
    _two_clients_update(one_server_url, "transaction")
    engine = create_db_engine(one_server_url, pooler="transaction")
    try:
        with engine.connect() as conn:
            assert conn.connection.driver_connection.prepare_threshold is None  # type: ignore[union-attr]
            for _ in range(20):  # four times psycopg's default threshold
                conn.execute(text("SELECT n FROM probe WHERE id = :id"), {"id": 1})
            # The one server session every client used holds no prepared statement.
            prepared = conn.execute(text("SELECT count(*) FROM pg_prepared_statements"))
            assert prepared.scalar_one() == 0
            total = conn.execute(text("SELECT sum(n) FROM probe")).scalar_one()
    finally:
        engine.dispose()
    assert total == 2 * 3 * len(_ROWS)  # every update of both clients landed
