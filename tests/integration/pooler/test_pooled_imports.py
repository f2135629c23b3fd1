"""Whole imports through a real PgBouncer in transaction mode (what Supabase's port 6543 is):
ticks, `contact-import tick`, `contact-import worker`; every job on its first attempt."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from contact_import.domain.job import JobStatus
from contact_import.runner.tick import run_tick
from contact_import.runtime import Runtime
from contact_import.sandbox.accounts import Faults
from contact_import.sandbox.server import RunningSandbox
from contact_import.settings import Settings
from contact_import.store.jobs import NOTIFY_CHANNEL, Job
from tests.conftest import PG_ADMIN_URL
from tests.helpers import Counts, assert_consistent, drain, queue_import
from tests.integration.pooler.conftest import database_name
from tests.pgbouncer import RunningPgBouncer

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

CLI = [sys.executable, "-m", "contact_import"]
# What a worker or tick through a broken pooler setup prints; none of it may appear.
_POOLER_ERRORS = ('prepared statement "', "pipeline aborted", "database error", "Traceback")


@pytest.fixture
def pooled_url(pg_database_url: str, pgbouncer: RunningPgBouncer) -> str:
    """This test's database through PgBouncer, as a plain URL (the pooler is set explicitly)."""
    return pgbouncer.url(database_name(pg_database_url))


@pytest.fixture
def pooled(settings_for: Callable[..., Settings], pooled_url: str) -> Callable[..., Settings]:
    def make(**overrides: object) -> Settings:
        values = {"database_url": pooled_url, "database_pooler": "transaction"}
        return settings_for(**(values | overrides))

    return make


@pytest.fixture
def pooled_env(subprocess_env: dict[str, str], pooled_url: str) -> dict[str, str]:
    """The environment of a `contact-import` subprocess going through the pooler."""
    return subprocess_env | {"DATABASE_URL": pooled_url, "DATABASE_POOLER": "transaction"}


def _wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _wait_completed(rt: Runtime, job: Job, what: str) -> None:
    _wait_for(lambda: rt.jobs.get(job.id).status is JobStatus.COMPLETED, 60, what)


def _assert_first_attempt(rt: Runtime, jobs: list[Job], size: int) -> list[Job]:
    done = [rt.jobs.get(j.id) for j in jobs]
    for job in done:
        assert_consistent(rt.engine, job, size)
        assert job.attempts == 1, job.error_message
        assert job.error_message is None
    return done


def _reference_counts(settings_for: Callable[..., Settings], sandbox: RunningSandbox) -> Counts:
    """The same book imported straight into Postgres (no pooler), for comparison."""
    with Runtime.build(settings_for()) as rt:
        job = queue_import(rt, sandbox, "reference", size=2000, seed=21)
        drain(rt)
        return Counts.of(rt.jobs.get(job.id))


def test_ticks_through_the_pooler_finish_on_the_first_attempt(
    pooled: Callable[..., Settings], sandbox: RunningSandbox
) -> None:
    with Runtime.build(pooled(page_size=200)) as rt:
        # So each tick's budget ends mid-import: 15 pages of at least 60 ms each (the wait
        # for the next page overlaps the writing of this one) outlast two 0.4 s ticks.
        slow = Faults(latency_ms=60)
        jobs = [
            queue_import(rt, sandbox, f"tick-{i}", size=3000, seed=30 + i, faults=slow)
            for i in range(2)
        ]
        ticks = 0
        while any(rt.jobs.get(j.id).status is not JobStatus.COMPLETED for j in jobs):
            run_tick(rt.jobs, rt.importer, metrics=rt.metrics, budget_seconds=0.4, max_jobs=2)
            ticks += 1
            assert ticks < 100
        # The same pooled connections ran each statement many more times than psycopg's
        # prepare threshold (5).
        assert ticks >= 3
        done = _assert_first_attempt(rt, jobs, 3000)
        assert all(j.pages_done == 15 for j in done)


def test_the_tick_command_through_the_pooler(
    pooled: Callable[..., Settings], sandbox: RunningSandbox, pooled_env: dict[str, str]
) -> None:
    env = pooled_env | {"PAGE_SIZE": "250"}
    with Runtime.build(pooled()) as rt:
        slow = Faults(latency_ms=30)
        jobs = [queue_import(rt, sandbox, f"cli-{i}", size=2000, faults=slow) for i in range(2)]
        for _ in range(20):
            result = subprocess.run(
                [*CLI, "tick", "--budget", "1", "--max-jobs", "2"],
                env=env, capture_output=True, text=True, timeout=120, check=False,
            )  # fmt: skip
            assert result.returncode == 0, result.stderr
            assert not any(e in result.stderr for e in _POOLER_ERRORS), result.stderr
            if all(rt.jobs.get(j.id).status is JobStatus.COMPLETED for j in jobs):
                break
        _assert_first_attempt(rt, jobs, 2000)


def test_worker_command_through_the_pooler_imports_exactly(
    settings_for: Callable[..., Settings],
    sandbox: RunningSandbox,
    subprocess_env: dict[str, str],
) -> None:
    # subprocess_env's DATABASE_URL is the pooled URL with ?pgbouncer=true: detected, no setting.
    reference = _reference_counts(settings_for, sandbox)
    env = subprocess_env | {"PAGE_SIZE": "250", "WORKER_CONCURRENCY": "2"}
    with Runtime.build(settings_for(database_url=env["DATABASE_URL"])) as rt:
        jobs = [queue_import(rt, sandbox, f"w-{i}", size=2000, seed=21) for i in range(3)]
        result = subprocess.run(
            [*CLI, "worker", "--once"],
            env=env, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert not any(e in result.stderr for e in _POOLER_ERRORS), result.stderr
        for job in _assert_first_attempt(rt, jobs, 2000):
            assert Counts.of(job) == reference
            assert job.pages_done == 8


def _listening_sessions(database: str) -> int:
    """Sessions LISTENing in ``database``, asked of the server itself (not through the pooler)."""
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND query = %s",
            (database, f"LISTEN {NOTIFY_CHANNEL}"),
        ).fetchone()
    assert row is not None
    return int(row[0])


@contextmanager
def _worker_running(env: dict[str, str], log: Path) -> Iterator[None]:
    """A long-running `contact-import worker`; SIGTERM at the end, which must exit cleanly."""
    with log.open("wb") as out:
        worker = subprocess.Popen([*CLI, "worker", "--concurrency", "1"], env=env, stderr=out)
    try:
        yield
    finally:
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(timeout=30)
        text = log.read_text(errors="replace")
        assert code == 0, text
        assert not any(e in text for e in _POOLER_ERRORS), text


def test_with_a_direct_url_the_pooled_worker_wakes_on_notify(
    pooled: Callable[..., Settings],
    sandbox: RunningSandbox,
    pooled_env: dict[str, str],
    pg_database_url: str,
    tmp_path: Path,
) -> None:
    env = pooled_env | {
        "DATABASE_DIRECT_URL": pg_database_url,
        # Far longer than the test: only a notification can wake the worker in time.
        "WORKER_POLL_SECONDS": "300",
    }
    with _worker_running(env, tmp_path / "worker.log"), Runtime.build(pooled()) as rt:
        db = database_name(pg_database_url)
        _wait_for(lambda: _listening_sessions(db) == 1, 30, "the worker's LISTEN")
        for user in ("first", "second"):
            time.sleep(1.0)  # the worker is idle again, waiting (poll: 300 s)
            # Queued through the pooler: its NOTIFY is sent by whichever server connection
            # commits it, and reaches the worker's direct session.
            job = queue_import(rt, sandbox, user, size=300)
            _wait_completed(rt, job, f"the worker to wake for {user}'s job")
            _assert_first_attempt(rt, [job], 300)


def test_without_a_direct_url_the_pooled_worker_polls(
    pooled: Callable[..., Settings],
    sandbox: RunningSandbox,
    pooled_env: dict[str, str],
    pg_database_url: str,
    tmp_path: Path,
) -> None:
    env = pooled_env | {"WORKER_POLL_SECONDS": "0.3"}
    with _worker_running(env, tmp_path / "worker.log"), Runtime.build(pooled()) as rt:
        assert rt.listen_url is None
        time.sleep(1.0)  # started and idle before the job exists: polling must find it
        job = queue_import(rt, sandbox, "polled", size=800)
        _wait_completed(rt, job, "the polling worker")
        _assert_first_attempt(rt, [job], 800)
        # It never tried to LISTEN through the pooler (where no notification would reach it).
        assert _listening_sessions(database_name(pg_database_url)) == 0


def test_db_upgrade_runs_through_the_pooler(
    pgbouncer: RunningPgBouncer, pg_admin: str, subprocess_env: dict[str, str]
) -> None:
    name = f"t_fresh_{time.monotonic_ns() % 10**9}"
    with psycopg.connect(pg_admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        env = subprocess_env | {"DATABASE_URL": pgbouncer.url(name, flag=True)}
        first = subprocess.run(
            [*CLI, "db", "upgrade"], env=env, capture_output=True, text=True, check=False
        )
        assert first.returncode == 0, first.stderr
        assert "up to date" in first.stdout
        tick = subprocess.run([*CLI, "tick"], env=env, capture_output=True, text=True, check=False)
        assert tick.returncode == 0, tick.stderr
    finally:
        with psycopg.connect(pg_admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
