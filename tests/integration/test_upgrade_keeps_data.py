"""Upgrading a database that holds data keeps it: a migration that rebuilt a table on SQLite
(Alembic's batch mode) would, with foreign keys on, cascade-delete the audit rows and null
every job's grant when it drops the old table. Every migration is run here over rows
written at the first revision (and at 0007), on both backends."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import pytest
from sqlalchemy import func, insert, select

from contact_import.store.db import create_db_engine, upgrade_database
from contact_import.store.schema import imported_contacts, jobs, provider_grants

# The head's tables have columns the old revision lacks: write only these.
NOW = datetime.now(UTC)
_GRANT = {
    "user_id": "ada", "provider": "google", "access_token_enc": "sealed",
    "created_at": NOW, "updated_at": NOW,
}  # fmt: skip


@pytest.mark.parametrize("since", ["0001", "0007_webhooks"])
@pytest.mark.parametrize(
    "database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_upgrading_over_existing_rows_keeps_jobs_grants_and_audit_rows(
    database: str, since: str, request: pytest.FixtureRequest
) -> None:
    if database == "sqlite":
        url = f"sqlite:///{request.getfixturevalue('tmp_path')}/old.db"
        engine = create_db_engine(url)
    else:
        engine = create_db_engine(request.getfixturevalue("pg_database_url"), schema="old_one")
    try:
        upgrade_database(engine, revision=since)
        grant_id, job_id = uuid4(), uuid4()
        with engine.begin() as conn:
            conn.execute(
                insert(provider_grants).values(id=grant_id, **_GRANT),
            )
            conn.execute(
                insert(jobs).values(
                    id=job_id, user_id="ada", provider="google", status="completed",
                    grant_id=grant_id, run_after=NOW, started_at=NOW, updated_at=NOW,
                )
            )  # fmt: skip
            conn.execute(
                insert(imported_contacts).values(
                    import_job_id=job_id, provider_contact_id="people/c1", action="created",
                    created_at=NOW,
                )
            )  # fmt: skip
        upgrade_database(engine)
        with engine.connect() as conn:
            job = conn.execute(select(jobs.c.grant_id, jobs.c.trigger)).one()
            audit = conn.execute(select(func.count()).select_from(imported_contacts)).scalar()
            grant = conn.execute(select(provider_grants.c.status)).one()
        assert (job.grant_id, job.trigger) == (grant_id, "user")
        assert audit == 1
        assert grant.status == "active"
    finally:
        engine.dispose()
