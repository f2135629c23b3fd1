"""Supabase-safe by default: row level security on every table the service creates.

On plain Postgres, set up as a Supabase project is: the roles ``anon`` and ``authenticated``
(cluster-wide, so created only if missing and dropped only by whoever created them), the
default privileges that grant them every table of ``public``, and a stand-in for Supabase's
``auth.uid()`` that reads the request's JWT claims from the GUC PostgREST sets
(``request.jwt.claims``), as Supabase's own does. The service runs as a role of its own that
owns the database, not as a superuser (a superuser would bypass RLS and prove nothing).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest
from sqlalchemy import text

from contact_import.errors import ConfigError
from contact_import.runtime import Runtime
from contact_import.sandbox.server import RunningSandbox, sandbox_settings
from contact_import.settings import Settings
from contact_import.store.db import create_db_engine, upgrade_database
from contact_import.store.schema import metadata
from tests.helpers import assert_consistent, drain, queue_import

# One xdist worker runs them all: the roles are the cluster's, created and dropped once.
pytestmark = [pytest.mark.postgres, pytest.mark.xdist_group("supabase_roles")]

SUPABASE_ROLES = ("anon", "authenticated")
# What Supabase's auth.uid() reads (supabase/auth, migrations/tenant/…_update_auth_uid).
AUTH_UID_STAND_IN = """
CREATE SCHEMA auth;
CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS $$
  SELECT nullif(
    coalesce(
      current_setting('request.jwt.claim.sub', true),
      (current_setting('request.jwt.claims', true)::jsonb ->> 'sub')
    ),
    ''
  )::uuid
$$;
GRANT USAGE ON SCHEMA auth TO anon, authenticated;
"""


def _admin(admin_url: str, *statements: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


@pytest.fixture(scope="module")
def supabase_roles(pg_admin: str) -> Iterator[None]:
    """``anon`` and ``authenticated``, NOLOGIN as on Supabase; dropped at the end only if
    this module created them (every database that referred to them is gone by then)."""
    created = []
    with psycopg.connect(pg_admin, autocommit=True) as conn:
        for role in SUPABASE_ROLES:
            try:
                conn.execute(f"CREATE ROLE {role} NOLOGIN")
                created.append(role)
            except (psycopg.errors.DuplicateObject, psycopg.errors.UniqueViolation):
                pass
    yield
    if created:
        _drop_roles(pg_admin, created)


def _drop_roles(pg_admin: str, roles: list[str]) -> None:
    """Drop the roles; a project database still being dropped holds them a moment longer."""
    for attempt in range(20):
        try:
            _admin(pg_admin, f"DROP ROLE IF EXISTS {', '.join(roles)}")
            return
        except psycopg.errors.DependentObjectsStillExist:
            if attempt == 19:
                raise
            time.sleep(0.5)


@dataclass(frozen=True)
class Project:
    """A database set up as a Supabase project; ``service_url`` connects as its owner."""

    admin_url: str
    service_url: str


@pytest.fixture
def project(pg_admin: str, supabase_roles: None) -> Iterator[Project]:
    suffix = uuid.uuid4().hex[:12]
    owner, database = f"ci_rls_owner_{suffix}", f"t_rls_{suffix}"
    base = pg_admin.rsplit("/", 1)[0]
    _admin(
        pg_admin,
        f"CREATE ROLE {owner} LOGIN NOSUPERUSER NOBYPASSRLS",
        f'CREATE DATABASE "{database}" OWNER {owner}',
    )
    admin_url = f"{base}/{database}"
    try:
        _admin(
            admin_url,
            AUTH_UID_STAND_IN,
            f"GRANT USAGE ON SCHEMA auth TO {owner}",
            # Supabase's default privileges: its API roles get every new table of public.
            "GRANT USAGE ON SCHEMA public TO anon, authenticated",
            f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public "
            "GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO anon, authenticated",
        )
        service_url = base.replace("postgres@", f"{owner}@", 1) + f"/{database}"
        engine = create_db_engine(service_url)
        upgrade_database(engine)
        engine.dispose()
        yield Project(admin_url, service_url)
    finally:
        _admin(pg_admin, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        _admin(pg_admin, f"DROP ROLE IF EXISTS {owner}")


def _service(project: Project, sandbox: RunningSandbox, *, policy: bool = False) -> Runtime:
    settings = Settings(
        contact_import_env="development",
        database_url=project.service_url,
        supabase_contacts_policy=policy,
        **sandbox_settings(sandbox.base_url),  # type: ignore[arg-type]
    )
    return Runtime.build(settings, migrate=True)


def _import(rt: Runtime, sandbox: RunningSandbox, user_id: str, size: int) -> int:
    """A full import by the service as ``user_id``; the contacts it stored."""
    job = queue_import(rt, sandbox, user_id, size=size, seed=size)
    drain(rt)
    return assert_consistent(rt.engine, rt.jobs.get(job.id), size).contacts


def _visible(project: Project, role: str, table: str, sub: str | None = None) -> int:
    """Rows of ``table`` that ``role`` sees, with ``sub`` in the request's JWT claims as
    PostgREST sets them (SET LOCAL ROLE, then request.jwt.claims)."""
    with psycopg.connect(project.admin_url) as conn:
        conn.execute(f"SET LOCAL ROLE {role}")
        if sub is not None:
            claims = json.dumps({"sub": sub, "role": role})
            conn.execute("SELECT set_config('request.jwt.claims', %s, true)", (claims,))
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
        assert row is not None
        return int(row[0])


def _our_tables() -> list[str]:
    return [t.name for t in metadata.sorted_tables] + ["alembic_version"]


def test_rls_is_on_for_every_table_and_forced_on_none(project: Project) -> None:
    with psycopg.connect(project.admin_url) as conn:
        rows = conn.execute(
            "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')"
        ).fetchall()
    assert {name for name, _, _ in rows} == set(_our_tables())
    assert [name for name, enabled, _ in rows if not enabled] == []
    assert [name for name, _, forced in rows if forced] == []


def test_anon_reads_and_writes_nothing_while_the_service_imports(
    project: Project, sandbox: RunningSandbox
) -> None:
    alice = str(uuid.uuid4())
    with _service(project, sandbox) as rt:
        stored = _import(rt, sandbox, alice, 150)
    assert stored > 0
    for table in _our_tables():
        assert _visible(project, "anon", table) == 0, table
        assert _visible(project, "authenticated", table, sub=alice) == 0, table
    with psycopg.connect(project.admin_url) as conn:
        conn.execute("SET LOCAL ROLE anon")
        assert conn.execute("DELETE FROM contacts").rowcount == 0
        assert conn.execute("UPDATE contact_import_jobs SET status = 'failed'").rowcount == 0
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            conn.execute("INSERT INTO provider_grants (id) VALUES (gen_random_uuid())")


def test_with_the_policy_a_signed_in_user_reads_only_their_own_contacts(
    project: Project, sandbox: RunningSandbox
) -> None:
    alice, bob = str(uuid.uuid4()), str(uuid.uuid4())
    with _service(project, sandbox, policy=True) as rt:
        mine = _import(rt, sandbox, alice, 120)
        theirs = _import(rt, sandbox, bob, 80)  # the service still writes every row
    assert _visible(project, "authenticated", "contacts", sub=alice) == mine
    assert _visible(project, "authenticated", "contacts", sub=bob) == theirs
    assert _visible(project, "authenticated", "contacts", sub=str(uuid.uuid4())) == 0
    assert _visible(project, "authenticated", "contacts") == 0  # no JWT: auth.uid() is NULL
    assert _visible(project, "anon", "contacts", sub=alice) == 0
    assert _visible(project, "authenticated", "provider_grants", sub=alice) == 0
    # Applying it again (every `db upgrade` with the setting on) replaces it in place.
    with _service(project, sandbox, policy=True):
        pass
    assert _visible(project, "authenticated", "contacts", sub=alice) == mine


def test_the_policy_needs_supabase_auth(pg_database_url: str) -> None:
    engine = create_db_engine(pg_database_url)
    try:
        with pytest.raises(ConfigError, match=r"needs Supabase's `authenticated` role"):
            upgrade_database(engine, contacts_read_policy=True)
        with engine.connect() as conn:  # and nothing of it was left behind
            policies = conn.execute(text("SELECT count(*) FROM pg_policies")).scalar_one()
        assert policies == 0
    finally:
        engine.dispose()


def test_a_dedicated_schema_gets_rls_on_every_table_too(pg_database_url: str) -> None:
    engine = create_db_engine(pg_database_url, schema="contact_import")
    try:
        upgrade_database(engine)
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT tablename, rowsecurity FROM pg_tables WHERE schemaname = :s "
                    "ORDER BY tablename"
                ),
                {"s": "contact_import"},
            ).all()
    finally:
        engine.dispose()
    assert {name for name, _ in rows} == set(_our_tables())
    assert all(enabled for _, enabled in rows), rows
