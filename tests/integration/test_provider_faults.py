"""Each sandbox fault knob ends in the right job state with exact counts; incremental imports."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import func, select, update

from contact_import.domain.job import ACTIVE_STATUSES, JobStatus
from contact_import.runner.tick import run_tick
from contact_import.runtime import Runtime
from contact_import.sandbox.accounts import Faults
from contact_import.sandbox.server import RunningSandbox
from contact_import.settings import Settings
from contact_import.store.jobs import Job
from contact_import.store.schema import contacts, imported_contacts, jobs
from tests.helpers import Counts, assert_consistent, drain, queue_import

BOOK = 1200


def run_until_final(rt: Runtime, job: Job, max_ticks: int = 20) -> Job:
    """Tick until the job ends, skipping backoff waits (the test's clock, not the queue's)."""
    for _ in range(max_ticks):
        run_tick(rt.jobs, rt.importer, metrics=rt.metrics, budget_seconds=60, max_jobs=1)
        current = rt.jobs.get(job.id)
        if current.status not in ACTIVE_STATUSES:
            return current
        with rt.engine.begin() as conn:
            conn.execute(
                update(jobs).where(jobs.c.id == job.id).values(run_after=current.updated_at)
            )
    raise AssertionError(f"job still {current.status} after {max_ticks} ticks")


FAULTS = {
    "429 with Retry-After": Faults(rate_limit_every=3, retry_after=1),
    "503 now and then": Faults(server_error_every=4),
    "latency": Faults(latency_ms=40),
    "truncated page": Faults(malformed_every=3),
    "expired page token": Faults(expire_page_token_at=3),
}


@pytest.mark.parametrize("provider", ["google", "microsoft"])
@pytest.mark.parametrize("fault", list(FAULTS))
def test_fault_knob_ends_completed_with_exact_counts(
    settings_for: Callable[..., Settings], sandbox: RunningSandbox, fault: str, provider: str
) -> None:
    with Runtime.build(settings_for(page_size=200)) as rt:
        reference = queue_import(rt, sandbox, "ref", size=BOOK, seed=8, provider=provider)
        drain(rt)
        job = queue_import(
            rt, sandbox, "vic", size=BOOK, seed=8, faults=FAULTS[fault], provider=provider
        )
        done = run_until_final(rt, job)
        assert_consistent(rt.engine, done, BOOK)
        assert Counts.of(done) == Counts.of(rt.jobs.get(reference.id))
        # A truncated page is not retried inside the fetch: the job backs off and resumes
        # from its cursor. Everything else is absorbed within one attempt.
        expected_attempts = range(2, 21) if fault == "truncated page" else range(1, 2)
        assert done.attempts in expected_attempts


def test_empty_graph_pages_with_a_next_link_lose_nothing(
    runtime: Runtime, sandbox: RunningSandbox
) -> None:
    faults = Faults(empty_page_every=2)
    job = queue_import(
        runtime, sandbox, "wes", size=BOOK, seed=8, faults=faults, provider="microsoft"
    )
    done = run_until_final(runtime, job)
    assert_consistent(runtime.engine, done, BOOK)


def _contacts(rt: Runtime, user: str) -> int:
    with rt.engine.connect() as conn:
        stmt = select(func.count()).select_from(contacts).where(contacts.c.user_id == user)
        return int(conn.execute(stmt).scalar_one())


def _deleted_rows(rt: Runtime, job_id: object) -> int:
    with rt.engine.connect() as conn:
        stmt = select(func.count()).where(
            imported_contacts.c.import_job_id == job_id,
            imported_contacts.c.detail == "deleted at the provider",
        )
        return int(conn.execute(stmt).scalar_one())


@pytest.mark.parametrize("provider", ["google", "microsoft"])
def test_reimport_asks_only_for_changes(
    runtime: Runtime, sandbox: RunningSandbox, provider: str
) -> None:
    first = queue_import(runtime, sandbox, "xia", size=BOOK, seed=9, provider=provider)
    drain(runtime)
    before = _contacts(runtime, "xia")
    grant = runtime.grants.get(first.grant_id)
    assert grant.sync_token
    token = grant.access_token
    assert token
    changed = sandbox.state.change_book(token, modified=5, added=7, deleted=3, seed=1)
    assert [len(changed[k]) for k in ("modified", "added", "deleted")] == [5, 7, 3]
    second, _ = runtime.jobs.create("xia", provider, first.grant_id)
    drain(runtime)
    again = runtime.jobs.get(second.id)
    assert again.status is JobStatus.COMPLETED
    # Only the 15 changed contacts were listed: 7 new, 5 with a new email, 3 deleted.
    assert (again.processed_contacts, again.created_contacts) == (15, 7)
    assert (again.updated_contacts, again.skipped_contacts) == (5, 3)
    assert _deleted_rows(runtime, again.id) == 3
    assert _contacts(runtime, "xia") == before + 7  # deleted at the provider, kept here
    assert runtime.grants.get(first.grant_id).sync_token != grant.sync_token
    third, _ = runtime.jobs.create("xia", provider, first.grant_id)
    drain(runtime)
    assert runtime.jobs.get(third.id).processed_contacts == 0  # nothing changed since


@pytest.mark.parametrize("provider", ["google", "microsoft"])
def test_an_expired_sync_token_falls_back_to_a_full_listing(
    runtime: Runtime, sandbox: RunningSandbox, provider: str
) -> None:
    first = queue_import(runtime, sandbox, "yan", size=BOOK, seed=10, provider=provider)
    drain(runtime)
    token = runtime.grants.get(first.grant_id).access_token
    assert token
    sandbox.state.change_book(token, modified=5, added=7, deleted=3, seed=2)
    account = sandbox.state.account(token)
    assert account is not None
    account.faults.expire_sync_tokens = True
    second, _ = runtime.jobs.create("yan", provider, first.grant_id)
    drain(runtime)
    again = runtime.jobs.get(second.id)
    live = BOOK - 3 + 7
    assert again.status is JobStatus.COMPLETED
    assert again.processed_contacts == again.total_contacts == live  # counted once each
    assert (again.created_contacts, again.updated_contacts) == (7, 5)
    assert again.skipped_contacts == live - 12
    assert runtime.grants.get(first.grant_id).sync_token  # a fresh one for next time
