"""Instant small imports: the OAuth callback imports its new job before it answers.

No worker and no tick run in these tests unless one says so: whatever is imported before the
callback answers, the callback imported itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from urllib.parse import urlsplit
from uuid import UUID

import pytest

from contact_import.domain.job import JobStatus
from contact_import.runner.instant import import_now
from contact_import.runtime import Runtime
from contact_import.sandbox.accounts import Faults
from contact_import.sandbox.server import RunningSandbox
from contact_import.settings import Settings
from contact_import.store.jobs import Job
from tests.helpers import assert_consistent, drain
from tests.integration.test_api import JWT_SECRET, as_user
from tests.integration.test_oauth_browser_binding import (
    API,
    RETURN_URL,
    browser,
    consent,
    query_of,
    start,
)

Build = Callable[..., Runtime]


@pytest.fixture
def build(settings_for: Callable[..., Settings]) -> Iterator[Build]:
    """Runtimes with these settings (and JWT_SECRET), closed after the test."""
    built: list[Runtime] = []

    def make(**overrides: object) -> Runtime:
        built.append(Runtime.build(settings_for(jwt_secret=JWT_SECRET, **overrides)))
        return built[-1]

    yield make
    for rt in built:
        rt.close()


def _callback_in_browser(rt: Runtime, account: str, provider: str = "google") -> Job:
    """Start, consent and land on the GET callback in one browser; the job it answered with."""
    with browser(rt) as client:
        landed = client.get(consent(start(client, "alice", provider), account))
    assert landed.status_code == 303, landed.text
    path = urlsplit(landed.headers["location"]).path
    return rt.jobs.get(UUID(path.rsplit("/", 1)[1]))


@pytest.mark.parametrize("provider", ["google", "microsoft"])
@pytest.mark.parametrize("size", [50, 500])
def test_the_callback_completes_a_small_book_before_it_answers(
    build: Build, sandbox: RunningSandbox, provider: str, size: int
) -> None:
    rt = build()
    assert rt.settings.callback_budget_seconds == 2  # the default
    job = _callback_in_browser(rt, sandbox.state.new_account(size, seed=31).id, provider)
    assert job.attempts == 1
    assert job.locked_by is None
    assert_consistent(rt.engine, job, size)


def test_the_post_callback_answers_with_the_completed_job(
    build: Build, sandbox: RunningSandbox
) -> None:
    rt = build(oauth_return_url=RETURN_URL)
    with browser(rt) as app_backend:
        callback = consent(start(app_backend, "alice"), sandbox.state.new_account(50, seed=32).id)
        params = query_of(callback)
        body = {"code": params["code"], "state": params["state"]}
        done = app_backend.post(f"{API}/google/callback", json=body, headers=as_user("alice"))
    assert done.status_code == 200, done.text
    answer = done.json()["job"]
    assert answer["status"] == JobStatus.COMPLETED.value
    assert answer["processed_contacts"] == 50
    assert_consistent(rt.engine, rt.jobs.get(UUID(answer["id"])), 50)


def test_a_large_book_is_left_checkpointed_for_the_workers(
    build: Build, sandbox: RunningSandbox
) -> None:
    rt = build(callback_budget_seconds=0.3, page_size=100)
    account = sandbox.state.new_account(3000, seed=33, faults=Faults(latency_ms=40))
    job = _callback_in_browser(rt, account.id)
    assert job.status is JobStatus.PROCESSING
    assert 1 <= job.pages_done < 30
    assert job.page_cursor is not None
    assert job.locked_by is None  # released at a page boundary: no lease held
    assert job.attempts == 0  # refunded, as when a tick's budget runs out
    drain(rt)
    assert_consistent(rt.engine, rt.jobs.get(job.id), 3000)


def test_with_a_budget_of_zero_the_callback_only_queues(
    build: Build, sandbox: RunningSandbox
) -> None:
    rt = build(callback_budget_seconds=0)
    job = _callback_in_browser(rt, sandbox.state.new_account(50, seed=34).id)
    assert job.status is JobStatus.FETCHING
    assert (job.attempts, job.pages_done, job.locked_by) == (0, 0, None)


def test_a_provider_fault_inside_the_callback_import_does_not_fail_the_callback(
    build: Build, sandbox: RunningSandbox
) -> None:
    rt = build(provider_max_retries=0)
    account = sandbox.state.new_account(50, seed=35, faults=Faults(server_error_every=1))
    job = _callback_in_browser(rt, account.id)  # asserts the 303
    # Settled by the importer as usual: released with a backoff, the attempt counted.
    assert job.status is JobStatus.PROCESSING
    assert job.locked_by is None
    assert job.attempts == 1
    assert "503" in (job.error_message or "")
    assert job.run_after > job.updated_at


def test_a_job_a_worker_already_holds_is_left_alone(build: Build, sandbox: RunningSandbox) -> None:
    rt = build()
    grant = rt.grants.create("bea", "google", access_token=sandbox.state.add_account(50))
    job, _ = rt.jobs.create("bea", "google", grant)
    (held,) = rt.jobs.claim("worker", 1).jobs  # a worker woken by NOTIFY got there first
    after = import_now(rt.jobs, rt.importer, job, metrics=rt.metrics, budget_seconds=2)
    assert after.status is JobStatus.PROCESSING
    assert (after.locked_by, after.attempts, after.pages_done) == (held.locked_by, 1, 0)
