"""Shared fixtures: a real database per test (SQLite file or Postgres database from a template),
and one sandbox server on loopback for the whole session."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from contact_import.runtime import Runtime
from contact_import.sandbox.server import RunningSandbox, sandbox_settings, start_sandbox
from contact_import.sandbox.state import SandboxState
from contact_import.settings import Settings
from contact_import.store.db import create_db_engine, upgrade_database
from tests.helpers import SettingsFor
from tests.pg_cluster import ClusterUnavailable, PgCluster

PG_ADMIN_URL = os.environ.get(
    "CONTACT_IMPORT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres"
)
IN_CI = os.environ.get("CI", "").lower() == "true"


def _pg_reachable() -> str | None:
    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0]


@pytest.fixture(scope="session")
def pg_admin() -> str:
    problem = _pg_reachable()
    if problem is not None:
        if IN_CI:
            pytest.fail(f"Postgres is required under CI=true: {problem}")
        pytest.skip(f"no Postgres at {PG_ADMIN_URL}: {problem}")
    return PG_ADMIN_URL


def _admin(sql: str) -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql)


def _pg_url(name: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(scope="session")
def pg_template(pg_admin: str) -> Iterator[str]:
    """A migrated database that each Postgres test clones (fast, and isolated)."""
    name = f"ci_tmpl_{os.getpid()}"
    _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    _admin(f'CREATE DATABASE "{name}"')
    engine = create_db_engine(_pg_url(name))
    upgrade_database(engine)
    engine.dispose()
    yield name
    _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    engine = create_db_engine(f"sqlite:///{path}")
    upgrade_database(engine)
    engine.dispose()
    return path


@pytest.fixture
def pg_database_url(request: pytest.FixtureRequest) -> Iterator[str]:
    template = request.getfixturevalue("pg_template")
    name = f"t_{uuid.uuid4().hex[:12]}"
    _admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    yield _pg_url(name)
    _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_database_url(sqlite_template: Path, tmp_path: Path) -> str:
    path = tmp_path / "contact-import.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """A throwaway Postgres cluster on a free port, for tests that stop and restart it (never
    the shared server). Its database ``template`` is migrated; see ``cluster_database_url``."""
    try:
        cluster = PgCluster.create()
    except ClusterUnavailable as exc:
        if IN_CI:
            pytest.fail(f"initdb/pg_ctl are required under CI=true: {exc}")
        pytest.skip(str(exc))
    try:
        cluster.start()
        engine = create_db_engine(cluster.create_database("template"))
        upgrade_database(engine)
        engine.dispose()
        yield cluster
    finally:
        cluster.remove()


@pytest.fixture
def cluster_database_url(pg_cluster: PgCluster) -> str:
    """A fresh migrated database in the throwaway cluster (left there: the cluster goes)."""
    pg_cluster.wait_accepting()  # an earlier test may have left it restarting
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_cluster.url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template')
    return pg_cluster.url(name)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each test using it runs twice: on SQLite and on Postgres (``cluster``, on request: a
    database in the throwaway cluster, for tests that restart Postgres)."""
    name = {
        "sqlite": "sqlite_database_url",
        "postgres": "pg_database_url",
        "cluster": "cluster_database_url",
    }[request.param]
    return str(request.getfixturevalue(name))


@pytest.fixture(scope="session")
def sandbox() -> Iterator[RunningSandbox]:
    with start_sandbox(SandboxState()) as running:
        yield running


@pytest.fixture
def settings_for(database_url: str, sandbox: RunningSandbox) -> SettingsFor:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "contact_import_env": "development",
            "database_url": database_url,
            **sandbox_settings(sandbox.base_url),
            "worker_poll_seconds": 0.2,
        }
        return Settings(**(values | overrides))

    return make


@pytest.fixture
def settings(settings_for: SettingsFor) -> Settings:
    return settings_for()


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    with Runtime.build(settings) as rt:
        yield rt


@pytest.fixture
def subprocess_env(settings: Settings) -> dict[str, str]:
    """Environment for `contact-import` subprocesses pointed at this test's database/sandbox."""
    prefixes = ("DATABASE_", "GOOGLE_", "MICROSOFT_", "SANDBOX_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env |= {
        "CONTACT_IMPORT_ENV": "development",
        "DATABASE_URL": settings.database_url,
        "GOOGLE_PEOPLE_API_URL": settings.google_people_api_url,
        "MICROSOFT_GRAPH_API_URL": settings.microsoft_graph_api_url,
        "WORKER_POLL_SECONDS": "0.2",
    }
    return env


# Under pytest-xdist (`make test TEST_WORKERS=auto`: `-n auto --dist loadgroup`), the tests
# that share one server-wide resource run on one worker: the throwaway cluster (tests stop
# and restart it), pgbouncer, headless Chromium, and Supabase's `anon`/`authenticated` roles
# (cluster-wide; a module fixture creates them and drops them at its end). Every other fixture
# is per test (its own database) or per worker process (the sandbox, the template databases).
_EXCLUSIVE = {
    "pg_cluster": "pg_cluster",
    "pgbouncer": "pgbouncer",
    "browser": "browser",
    "supabase_roles": "supabase_roles",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        if item.get_closest_marker("browser") is not None:
            used.add("browser")
        for resource, group in _EXCLUSIVE.items():
            if resource in used:
                item.add_marker(pytest.mark.xdist_group(group))
                break
