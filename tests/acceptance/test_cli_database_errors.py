"""The CLI against a database without our tables, or a bad DATABASE_DIRECT_URL: one clear line."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

CLI = [sys.executable, "-m", "contact_import"]


def _run(args: list[str], database_url: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {"PATH": "/usr/bin:/bin", "CONTACT_IMPORT_ENV": "development"}
    return subprocess.run(
        [*CLI, *args],
        env=base | {"DATABASE_URL": database_url} | env,
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


@pytest.fixture
def empty_pg_database(pg_admin: str) -> Iterator[str]:
    """A database with no tables at all (``db upgrade`` never ran)."""
    name = f"t_empty_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield pg_admin.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(pg_admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/empty.db"
    return str(request.getfixturevalue("empty_pg_database"))


def test_missing_tables_say_to_run_db_upgrade(empty_database: str) -> None:
    result = _run(["jobs", "list"], empty_database)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "has no contact-import tables" in lines[0]
    assert "run `contact-import db upgrade`" in lines[0]
    assert _run(["db", "upgrade"], empty_database).returncode == 0
    assert _run(["jobs", "list"], empty_database).returncode == 0


@pytest.mark.postgres
def test_a_direct_url_that_is_not_postgres_is_refused(empty_pg_database: str) -> None:
    result = _run(
        ["worker", "--once"], empty_pg_database, DATABASE_DIRECT_URL="sqlite:///elsewhere.db"
    )
    assert result.returncode == 1
    assert result.stderr.strip() == "error: DATABASE_DIRECT_URL must be a PostgreSQL URL"
