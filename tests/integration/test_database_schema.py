"""DATABASE_SCHEMA: two deployments in two schemas of one Postgres database never meet.

Each gets its tables, indexes and Alembic version table in its own schema, imports through
the same code (the page's one write statement included), and wakes only its own workers.
The database also holds the default deployment (the template migrated ``public``), which
sees none of it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack

import pytest
from sqlalchemy import func, select, text

from contact_import.runtime import Runtime
from contact_import.sandbox.server import RunningSandbox, sandbox_settings
from contact_import.settings import Settings
from contact_import.store.notifications import listen_for_jobs
from contact_import.store.schema import contacts, jobs, metadata
from tests.helpers import assert_consistent, drain, queue_import

pytestmark = pytest.mark.postgres

SCHEMAS = ("tenant_a", "tenant_b")


def _settings(database_url: str, sandbox: RunningSandbox, schema: str | None) -> Settings:
    return Settings(
        contact_import_env="development",
        database_url=database_url,
        database_schema=schema,
        worker_poll_seconds=0.2,
        **sandbox_settings(sandbox.base_url),  # type: ignore[arg-type]
    )


@pytest.fixture
def deployments(pg_database_url: str, sandbox: RunningSandbox) -> Iterator[dict[str, Runtime]]:
    """One runtime per schema, each migrated by ``Runtime.build`` (which creates the schema),
    and the default one (``public``, migrated by the template)."""
    with ExitStack() as stack:
        built = {
            schema: stack.enter_context(
                Runtime.build(_settings(pg_database_url, sandbox, schema), migrate=True)
            )
            for schema in SCHEMAS
        }
        built["public"] = stack.enter_context(
            Runtime.build(_settings(pg_database_url, sandbox, None))
        )
        yield built


def _tables_in(rt: Runtime, schema: str) -> set[str]:
    with rt.engine.connect() as conn:
        rows = conn.execute(
            text("SELECT table_name FROM information_schema.tables WHERE table_schema = :s"),
            {"s": schema},
        )
        return set(rows.scalars())


def _count(rt: Runtime, table: object) -> int:
    with rt.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def test_each_schema_holds_every_table_and_its_own_migration_version(
    deployments: dict[str, Runtime],
) -> None:
    expected = {table.name for table in metadata.sorted_tables} | {"alembic_version"}
    for schema in SCHEMAS:
        assert _tables_in(deployments[schema], schema) == expected, schema
        with deployments[schema].engine.connect() as conn:
            version = conn.execute(
                text(f'SELECT version_num FROM "{schema}".alembic_version')
            ).scalar_one()
        with deployments["public"].engine.connect() as conn:
            public_version = conn.execute(text("SELECT version_num FROM alembic_version"))
            assert version == public_version.scalar_one()


def test_two_schemas_each_import_in_full_and_never_see_each_other(
    deployments: dict[str, Runtime], sandbox: RunningSandbox
) -> None:
    # The same user in both, each with an active job: "one active job per user" is per schema.
    queued = {
        schema: queue_import(deployments[schema], sandbox, "alice", size=size, seed=4)
        for schema, size in zip(SCHEMAS, (300, 120), strict=True)
    }
    for schema, job in queued.items():
        rt = deployments[schema]
        drain(rt)
        done = rt.jobs.get(job.id)
        state = assert_consistent(rt.engine, done, done.total_contacts)
        assert state.contacts == done.created_contacts > 0
        assert [j.id for j in rt.jobs.list_jobs(user_id="alice")] == [job.id]
        assert _count(rt, contacts) == state.contacts
    a, b = (deployments[s] for s in SCHEMAS)
    assert a.jobs.get(queued["tenant_a"].id).total_contacts == 300
    assert b.jobs.get(queued["tenant_b"].id).total_contacts == 120
    # The default deployment of the same database saw nothing at all.
    assert _count(deployments["public"], jobs) == 0
    assert _count(deployments["public"], contacts) == 0


def test_workers_of_one_schema_are_not_woken_by_another(
    deployments: dict[str, Runtime], sandbox: RunningSandbox
) -> None:
    a, b = (deployments[s] for s in SCHEMAS)
    assert len({rt.jobs.notify_channel for rt in deployments.values()}) == 3
    assert a.listen_url is not None
    with listen_for_jobs(a.listen_url, a.jobs.notify_channel) as notified:
        queue_import(b, sandbox, "bob", size=5)  # committed first: its NOTIFY would come first
        queue_import(a, sandbox, "bob", size=5)
        assert notified(10.0)  # a's own job
        assert not notified(0.3)  # and nothing else: b's NOTIFY went to b's channel only
