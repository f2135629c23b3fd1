"""Fixtures of the pooler tests: one real PgBouncer (transaction mode) for the session, and a
``database_url`` that reaches each test's own database through it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import IN_CI
from tests.pgbouncer import RunningPgBouncer, find_pgbouncer, start_pgbouncer


@pytest.fixture(scope="session")
def pgbouncer_binary(pg_admin: str) -> str:
    binary = find_pgbouncer()
    if binary is None:
        if IN_CI:
            pytest.fail("pgbouncer is required under CI=true (apt-get install pgbouncer)")
        pytest.skip("pgbouncer is not installed")
    return binary


@pytest.fixture(scope="session")
def pgbouncer(pgbouncer_binary: str) -> Iterator[RunningPgBouncer]:
    with start_pgbouncer(pgbouncer_binary, pool_mode="transaction") as running:
        yield running


def database_name(url: str) -> str:
    return url.rsplit("/", 1)[1]


@pytest.fixture
def database_url(pg_database_url: str, pgbouncer: RunningPgBouncer) -> str:
    """This test's database through PgBouncer, flagged the way Prisma users write it."""
    return pgbouncer.url(database_name(pg_database_url), flag=True)
