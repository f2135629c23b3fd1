"""Continuous sync with a 2-second interval (both providers, both backends): after the first
import, cron ticks (the route, as Vercel calls it) queue incremental imports on their own,
which bring exactly what changed at the sandbox; a grant whose refresh fails for good is
marked and never synced again."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update

from contact_import.domain.job import JobStatus
from contact_import.runner.worker import Worker
from contact_import.runtime import Runtime
from contact_import.sandbox.accounts import Faults
from contact_import.sandbox.server import RunningSandbox
from contact_import.settings import Settings
from contact_import.store.jobs import Job
from contact_import.store.schema import provider_grants
from contact_import.web.schemas import JobOut
from tests.helpers import ProviderTokens, assert_consistent, sandbox_tokens, stored_state
from tests.integration.test_api import CRON, CRON_SECRET, client_for

PROVIDERS = ["google", "microsoft"]
INTERVAL = 2.0
HOURS_2 = timedelta(hours=2)


@pytest.fixture
def rt(settings_for: Callable[..., Settings]) -> Iterator[Runtime]:
    settings = settings_for(sync_interval_seconds=INTERVAL, cron_secret=CRON_SECRET)
    with Runtime.build(settings) as runtime:
        yield runtime


def tick(rt: Runtime) -> list[str]:
    """One cron tick (the route, as Vercel calls it): the ids of the jobs it claimed."""
    with client_for(rt) as client:
        response = client.get(CRON, headers={"Authorization": f"Bearer {CRON_SECRET}"})
    assert response.status_code == 200, response.text
    return [job_id for ids in response.json()["job_ids"].values() for job_id in ids]


def connect(rt: Runtime, sandbox: RunningSandbox, user: str, provider: str) -> ProviderTokens:
    """An account connected with a refresh token, and its first import run to completion."""
    tokens = sandbox_tokens(sandbox, provider, size=300, seed=41)
    grant_id = rt.grants.create(
        user, provider, access_token=tokens.access_token, refresh_token=tokens.refresh_token
    )
    job, _created = rt.jobs.create(user, provider, grant_id)
    assert tick(rt) == [str(job.id)]
    assert_consistent(rt.engine, rt.jobs.get(job.id), 300)
    return tokens


def sync_jobs(rt: Runtime, user: str) -> list[Job]:
    return [job for job in rt.jobs.list_jobs(user_id=user) if job.trigger == "sync"]


def queued(rt: Runtime, trigger: str) -> float:
    value = rt.metrics.registry.get_sample_value(
        "contact_import_jobs_queued_total", {"trigger": trigger}
    )
    assert value is not None
    return value


def wait_past_interval() -> None:
    # The interval is measured on the database's clock (Postgres now()): real time must pass.
    time.sleep(INTERVAL + 0.2)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_the_next_sync_brings_exactly_the_changes_without_any_user_action(
    rt: Runtime, sandbox: RunningSandbox, provider: str
) -> None:
    tokens = connect(rt, sandbox, "nora", provider)
    assert tick(rt) == []  # listed just now: not due yet
    before = stored_state(rt.engine, "nora", rt.jobs.list_jobs(user_id="nora")[0].id).contacts
    sandbox.state.change_book(tokens.account, modified=3, added=4, deleted=2, seed=5)

    wait_past_interval()
    claimed = tick(rt)

    [sync] = sync_jobs(rt, "nora")
    assert claimed == [str(sync.id)]
    done = rt.jobs.get(sync.id)
    assert JobOut.of(done).trigger == "sync"
    assert done.status is JobStatus.COMPLETED, done.error_message
    counts = (done.processed_contacts, done.created_contacts, done.updated_contacts)
    assert counts == (9, 4, 3)
    assert (done.skipped_contacts, done.failed_contacts) == (2, 0)  # deleted: recorded, kept
    after = stored_state(rt.engine, "nora", sync.id)
    assert after.contacts == before + 4
    assert after.audit_rows == 9
    assert queued(rt, "sync") == 1
    [account] = rt.accounts.list("nora")
    assert account.account.last_synced_at is not None
    assert account.next_sync_at is not None
    assert account.next_sync_at > account.account.last_synced_at


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_grant_whose_refresh_fails_for_good_is_marked_and_not_synced(
    rt: Runtime, sandbox: RunningSandbox, provider: str
) -> None:
    tokens = connect(rt, sandbox, "otto", provider)
    sandbox.state.revoke(tokens.account)  # the user revoked us at the provider's side

    wait_past_interval()
    tick(rt)
    [sync] = sync_jobs(rt, "otto")
    failed = rt.jobs.get(sync.id)
    assert failed.status is JobStatus.FAILED
    assert "revoked" in (failed.error_message or "")
    [account] = rt.accounts.list("otto")
    assert account.account.status == "refresh_failed"
    assert account.next_sync_at is None

    wait_past_interval()
    assert tick(rt) == []
    assert len(sync_jobs(rt, "otto")) == 1


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_worker_queues_sync_imports_too_and_off_means_off(
    settings_for: Callable[..., Settings], sandbox: RunningSandbox
) -> None:
    # SYNC_INTERVAL_SECONDS=0, the default
    with Runtime.build(settings_for(cron_secret=CRON_SECRET)) as off:
        connect(off, sandbox, "pia", "google")
        wait_past_interval()
        assert tick(off) == []
        assert off.accounts.list("pia")[0].next_sync_at is None
    with Runtime.build(settings_for(sync_interval_seconds=INTERVAL)) as rt:
        worker = _worker(rt, reap_seconds=0.1)
        worker.run(once=True)
        [sync] = sync_jobs(rt, "pia")
        assert rt.jobs.get(sync.id).status is JobStatus.COMPLETED


def _worker(rt: Runtime, **options: Any) -> Worker:
    return Worker(
        rt.jobs,
        rt.importer,
        metrics=rt.metrics,
        concurrency=2,
        poll_seconds=0.05,
        sync_interval=rt.settings.sync_interval_seconds,
        **options,
    )


def test_a_sync_that_fails_waits_out_the_interval_before_the_next(
    settings_for: Callable[..., Settings], sandbox: RunningSandbox
) -> None:
    settings = settings_for(sync_interval_seconds=3600, max_attempts=1, cron_secret=CRON_SECRET)
    with Runtime.build(settings) as rt:
        tokens = sandbox_tokens(sandbox, "google", size=5, faults=Faults(server_error_every=1))
        rt.grants.create(
            "una", "google", access_token=tokens.access_token, refresh_token=tokens.refresh_token
        )
        with rt.engine.begin() as conn:  # connected two hours ago, never listed: due
            conn.execute(update(provider_grants).values(created_at=datetime.now(UTC) - HOURS_2))
        for _ in range(4):  # back-to-back ticks: the first queues a sync, and it fails
            tick(rt)
        [sync] = sync_jobs(rt, "una")
        assert rt.jobs.get(sync.id).status is JobStatus.FAILED
        assert len(rt.jobs.list_jobs(user_id="una")) == 1  # not one more per tick
