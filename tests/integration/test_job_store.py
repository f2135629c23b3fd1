"""The job queue's SQL on both backends: claims, fences, reaping, schema, monitoring queries."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text, update

from contact_import.domain.job import JobStatus
from contact_import.errors import JobStateConflict, LeaseLost
from contact_import.runtime import Runtime
from contact_import.settings import Settings
from contact_import.store.jobs import Checkpoint, PageCounts, checkpoint
from contact_import.store.schema import jobs, metadata


def _expire(rt: Runtime, job_id: object) -> None:
    past = datetime.now(UTC) - timedelta(seconds=5)
    with rt.engine.begin() as conn:
        conn.execute(update(jobs).where(jobs.c.id == job_id).values(lease_expires_at=past))


def test_claim_takes_a_lease_and_counts_the_attempt(runtime: Runtime) -> None:
    job, _ = runtime.jobs.create("u1", "google")
    (claimed,) = runtime.jobs.claim("w1", 5).jobs
    assert claimed.id == job.id
    assert claimed.status is JobStatus.PROCESSING
    assert claimed.attempts == 1
    assert claimed.locked_by is not None
    assert claimed.locked_by.startswith("w1/")
    assert claimed.lease_expires_at is not None
    assert claimed.lease_expires_at > datetime.now(UTC)
    assert runtime.jobs.claim("w2", 5).jobs == []  # held


def test_claim_skips_jobs_that_are_not_due(runtime: Runtime) -> None:
    job, _ = runtime.jobs.create("u1", "google")
    (claimed,) = runtime.jobs.claim("w1", 1).jobs
    runtime.jobs.release(claimed.lease, delay=60, refund=False, error="503 from provider")
    assert runtime.jobs.claim("w1", 1).jobs == []
    waiting = runtime.jobs.get(job.id)
    assert waiting.error_message == "503 from provider"
    assert waiting.attempts == 1


def test_a_lost_lease_fences_every_write(runtime: Runtime) -> None:
    runtime.jobs.create("u1", "google")
    (old,) = runtime.jobs.claim("w1", 1).jobs
    _expire(runtime, old.id)
    (new,) = runtime.jobs.claim("w2", 1).jobs  # reclaimed by another worker
    assert new.attempts == 2
    with pytest.raises(LeaseLost):
        runtime.jobs.heartbeat(old.lease)
    with pytest.raises(LeaseLost):
        runtime.jobs.finish(old.lease, JobStatus.COMPLETED)
    with pytest.raises(LeaseLost):
        runtime.jobs.release(old.lease, refund=True)
    step = Checkpoint(PageCounts(created=3), next_cursor="x", provider_total=3)
    with pytest.raises(LeaseLost), runtime.engine.begin() as conn:
        checkpoint(conn, old.lease, step, lease_seconds=30, webhooks=False)
    current = runtime.jobs.get(new.id)
    assert current.locked_by == new.locked_by
    assert current.processed_contacts == 0
    runtime.jobs.heartbeat(new.lease)  # the new owner is unaffected


def test_same_worker_name_claiming_again_gets_a_different_fence(runtime: Runtime) -> None:
    runtime.jobs.create("u1", "google")
    (first,) = runtime.jobs.claim("w1", 1).jobs
    runtime.jobs.release(first.lease, refund=True)
    (second,) = runtime.jobs.claim("w1", 1).jobs
    assert (second.attempts, first.attempts) == (1, 1)  # refunded, so equal attempts …
    assert second.locked_by != first.locked_by  # … but the fence still differs
    with pytest.raises(LeaseLost):
        runtime.jobs.finish(first.lease, JobStatus.COMPLETED)


def test_reap_fails_a_job_whose_last_attempt_died(runtime: Runtime) -> None:
    job, _ = runtime.jobs.create("u1", "google")
    with runtime.engine.begin() as conn:
        conn.execute(update(jobs).values(max_attempts=1))
    runtime.jobs.claim("w1", 1)
    _expire(runtime, job.id)
    assert runtime.jobs.claim("w2", 1).jobs == []  # no attempts left
    assert runtime.jobs.reap() == (1, 0)
    failed = runtime.jobs.get(job.id)
    assert failed.status is JobStatus.FAILED
    assert "crashed or timed out" in (failed.error_message or "")
    assert failed.completed_at is not None


def test_reap_cancels_a_flagged_job_whose_worker_died(runtime: Runtime) -> None:
    job, _ = runtime.jobs.create("u1", "google")
    runtime.jobs.claim("w1", 1)
    flagged = runtime.jobs.cancel(job.id)
    assert flagged.status is JobStatus.PROCESSING
    assert flagged.cancel_requested
    _expire(runtime, job.id)
    assert runtime.jobs.reap() == (0, 1)
    assert runtime.jobs.get(job.id).status is JobStatus.CANCELLED


def test_cancel_and_retry_refuse_the_wrong_states(runtime: Runtime) -> None:
    job, _ = runtime.jobs.create("u1", "google")
    with pytest.raises(JobStateConflict):
        runtime.jobs.retry(job.id)
    runtime.jobs.cancel(job.id)
    with pytest.raises(JobStateConflict):
        runtime.jobs.cancel(job.id)
    newer, created = runtime.jobs.create("u1", "google")
    assert created
    with pytest.raises(JobStateConflict, match="already running"):
        runtime.jobs.retry(job.id)
    assert runtime.jobs.get(newer.id).status is JobStatus.FETCHING


def test_concurrent_starts_create_one_job(runtime: Runtime) -> None:
    results: list[tuple[object, bool]] = []
    barrier = threading.Barrier(6)

    def start() -> None:
        barrier.wait()
        job, created = runtime.jobs.create("same-user", "google")
        results.append((job.id, created))

    threads = [threading.Thread(target=start) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({job_id for job_id, _ in results}) == 1
    assert sum(created for _, created in results) == 1


def test_migrations_create_exactly_the_declared_schema(runtime: Runtime) -> None:
    with runtime.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []


@pytest.mark.postgres
@pytest.mark.parametrize("schema", [None, "monitored"])
def test_the_originals_monitoring_sql_runs_unchanged(
    pg_database_url: str, schema: str | None
) -> None:
    settings = Settings(
        contact_import_env="development", database_url=pg_database_url, database_schema=schema
    )
    with Runtime.build(settings, migrate=schema is not None) as rt:
        job, _ = rt.jobs.create("u1", "google")
        with rt.engine.begin() as conn:
            if schema is not None:  # what an operator does in psql; the service never does
                conn.execute(text(f"SET LOCAL search_path TO {schema}"))
            conn.execute(update(jobs).values(started_at=datetime.now(UTC) - timedelta(minutes=10)))
            stuck = conn.execute(
                text(
                    """
SELECT id, status, started_at, total_contacts, imported_contacts
FROM contact_import_jobs
WHERE status IN ('fetching', 'processing')
  AND completed_at IS NULL
  AND started_at < now() - interval '5 minutes';"""
                )
            ).all()
            recent = conn.execute(
                text(
                    """
SELECT id, provider, status, total_contacts, imported_contacts, skipped_contacts,
       completed_at - started_at as duration
FROM contact_import_jobs
WHERE completed_at > now() - interval '1 hour'
ORDER BY completed_at DESC;"""
                )
            ).all()
            audit = conn.execute(
                text(
                    "SELECT action, COUNT(*) \nFROM imported_contacts \n"
                    "WHERE import_job_id = :id\nGROUP BY action;"
                ),
                {"id": job.id},
            ).all()
    assert [row.id for row in stuck] == [job.id]
    assert recent == []
    assert audit == []
