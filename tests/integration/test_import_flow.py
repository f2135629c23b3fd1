"""Whole imports through the real importer, sandbox over loopback, on SQLite and Postgres."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from contact_import.domain.job import JobStatus
from contact_import.providers.base import ContactPage, ContactSource
from contact_import.runner.importer import ImportBudget, SourceFor
from contact_import.runner.tick import TickSummary, run_tick
from contact_import.runtime import Runtime
from contact_import.sandbox.accounts import Faults
from contact_import.sandbox.server import RunningSandbox
from contact_import.settings import Settings
from contact_import.store.clock import QueueClock
from contact_import.store.jobs import Job
from tests.helpers import (
    Counts,
    FakeTime,
    assert_consistent,
    before_each_page,
    drain,
    importer_reading,
    queue_import,
)


def test_full_import_has_exact_counts(runtime: Runtime, sandbox: RunningSandbox) -> None:
    job = queue_import(runtime, sandbox, "alice", size=2500)
    drain(runtime)
    done = runtime.jobs.get(job.id)
    state = assert_consistent(runtime.engine, done, 2500)
    assert state.contacts == done.created_contacts
    # The sandbox book has duplicates and empty contacts: all three actions occur.
    assert done.created_contacts > 2000
    assert done.updated_contacts > 0
    assert done.skipped_contacts > 0
    assert done.pages_done == 3
    assert done.attempts == 1
    assert done.locked_by is None
    assert done.completed_at is not None


def test_second_import_of_the_same_book_is_all_skipped(
    runtime: Runtime, sandbox: RunningSandbox
) -> None:
    first = queue_import(runtime, sandbox, "bob", size=1200, seed=7)
    drain(runtime)
    created = runtime.jobs.get(first.id).created_contacts
    second = queue_import(runtime, sandbox, "bob", size=1200, seed=7)
    drain(runtime)
    again = runtime.jobs.get(second.id)
    assert_consistent(runtime.engine, again, 1200)
    assert (again.created_contacts, again.updated_contacts) == (0, 0)
    assert again.skipped_contacts == 1200
    assert assert_consistent(runtime.engine, again, 1200).contacts == created


def test_one_active_job_per_user_and_provider(runtime: Runtime, sandbox: RunningSandbox) -> None:
    job = queue_import(runtime, sandbox, "carol", size=10)
    again, created = runtime.jobs.create("carol", "google", job.grant_id)
    assert not created
    assert again.id == job.id
    other_user, created = runtime.jobs.create("dave", "google", job.grant_id)
    assert created
    assert other_user.id != job.id


class _Crash(BaseException):
    """Stands for the process dying: not an Exception, so nothing catches or releases."""


def _crashing_after(pages: int, sources: SourceFor) -> SourceFor:
    class Source:
        def __init__(self, inner: ContactSource) -> None:
            self.inner, self.fetched = inner, 0

        def fetch_page(self, cursor: str | None) -> ContactPage:
            if self.fetched == pages:
                raise _Crash
            self.fetched += 1
            return self.inner.fetch_page(cursor)

    return lambda job, **kwargs: Source(sources(job, **kwargs))


def test_expired_lease_is_reclaimed_and_completes_exactly(
    settings_for: Callable[..., Settings], sandbox: RunningSandbox
) -> None:
    with Runtime.build(settings_for(lease_seconds=30, page_size=400)) as rt:
        queue = QueueClock.install(rt.engine)
        reference = queue_import(rt, sandbox, "ref", size=3000, seed=3)
        drain(rt)
        job = queue_import(rt, sandbox, "erin", size=3000, seed=3)
        crashing = importer_reading(rt, _crashing_after(3, rt.importer._sources))
        (claimed,) = rt.jobs.claim("doomed", 1).jobs
        with pytest.raises(_Crash):
            crashing.run(claimed, budget=ImportBudget())
        stuck = rt.jobs.get(job.id)
        assert stuck.status is JobStatus.PROCESSING
        assert stuck.pages_done == 3
        assert stuck.locked_by is not None
        queue.advance(29)
        assert rt.jobs.claim("too-early", 1).jobs == []  # the lease still holds
        queue.advance(2)  # ... and now it has run out
        summary = run_tick(rt.jobs, rt.importer, metrics=rt.metrics, budget_seconds=60, max_jobs=1)
        assert summary.to_json()["job_ids"]["processed"] == [str(job.id)]
        done = rt.jobs.get(job.id)
        assert done.attempts == 2  # the crashed attempt counts
        assert Counts.of(done) == Counts.of(rt.jobs.get(reference.id))
        assert_consistent(rt.engine, done, 3000)


def test_ticks_with_a_small_budget_finish_a_large_import(
    settings_for: Callable[..., Settings], sandbox: RunningSandbox
) -> None:
    budget, page = 0.4, 0.1  # seconds: three pages fit a tick, a fourth would overrun it
    clock = FakeTime()
    with Runtime.build(settings_for(page_size=500)) as rt:
        # The fake clock charges a page's time to its fetch: pages one after another, or the
        # fetch of page N+1, ahead, would be charged while page N is written.
        importer = importer_reading(
            rt, before_each_page(lambda: clock.advance(page), rt.importer._sources), pipeline=False
        )
        job = queue_import(rt, sandbox, "frank", size=6000)
        ticks: list[TickSummary] = []
        pages: list[int] = []
        while rt.jobs.get(job.id).status is not JobStatus.COMPLETED:
            started, pages_before = clock(), rt.jobs.get(job.id).pages_done
            summary = run_tick(
                rt.jobs, importer, metrics=rt.metrics, budget_seconds=budget, max_jobs=2,
                clock=clock,
            )  # fmt: skip
            elapsed = clock() - started
            ticks.append(summary)
            pages.append(rt.jobs.get(job.id).pages_done - pages_before)
            # A tick may overrun only by the one page it had started.
            assert elapsed <= budget + summary.longest_page_seconds, (elapsed, summary)
            assert len(ticks) < 60
        assert pages == [3, 3, 3, 3]  # 12 pages of 500: each tick stops when the next would not fit
        assert all(t.to_json()["job_ids"]["continuing"] == [str(job.id)] for t in ticks[:-1])
        assert ticks[-1].to_json()["job_ids"]["processed"] == [str(job.id)]
        done = rt.jobs.get(job.id)
        assert done.attempts == 1  # yielding at a page boundary does not use up attempts
        assert_consistent(rt.engine, done, 6000)


def test_tick_with_nothing_to_do(runtime: Runtime) -> None:
    summary = run_tick(
        runtime.jobs, runtime.importer, metrics=runtime.metrics, budget_seconds=1, max_jobs=2
    )
    assert summary.to_json() == {
        "message": "No pending jobs",
        "processed": 0,
        "failed": 0,
        "job_ids": {"processed": [], "failed": [], "continuing": [], "cancelled": []},
    }


def test_cancel_stops_a_running_import_at_a_page_boundary(
    settings_for: Callable[..., Settings], sandbox: RunningSandbox
) -> None:
    with Runtime.build(settings_for(page_size=200)) as rt:
        job = queue_import(rt, sandbox, "gina", size=2000)
        (claimed,) = rt.jobs.claim("w", 1).jobs
        rt.jobs.cancel(job.id)  # held by a live worker: only flagged
        assert rt.jobs.get(job.id).status is JobStatus.PROCESSING
        outcome = rt.importer.run(claimed, ImportBudget())
        done = rt.jobs.get(job.id)
        assert outcome.value == "cancelled"
        assert done.status is JobStatus.CANCELLED
        assert done.pages_done == 1
        assert done.processed_contacts == 200


def test_cancel_of_a_waiting_job_is_immediate_and_retry_resumes(
    runtime: Runtime, sandbox: RunningSandbox
) -> None:
    job = queue_import(runtime, sandbox, "hank", size=50)
    cancelled = runtime.jobs.cancel(job.id)
    assert cancelled.status is JobStatus.CANCELLED
    assert (
        run_tick(
            runtime.jobs, runtime.importer, metrics=runtime.metrics, budget_seconds=5, max_jobs=2
        ).claimed
        == 0
    )
    retried = runtime.jobs.retry(job.id)
    assert retried.status is JobStatus.FETCHING
    drain(runtime)
    assert_consistent(runtime.engine, runtime.jobs.get(job.id), 50)


def test_transient_provider_errors_back_off_then_fail_after_max_attempts(
    settings_for: Callable[..., Settings], sandbox: RunningSandbox
) -> None:
    with Runtime.build(settings_for(max_attempts=2, provider_max_retries=0)) as rt:
        queue = QueueClock.install(rt.engine)
        job = queue_import(rt, sandbox, "ivy", size=10, faults=Faults(server_error_every=1))
        first = run_tick(rt.jobs, rt.importer, metrics=rt.metrics, budget_seconds=30, max_jobs=1)
        assert first.to_json()["job_ids"]["continuing"] == [str(job.id)]
        waiting = rt.jobs.get(job.id)
        assert waiting.status is JobStatus.PROCESSING
        assert waiting.locked_by is None
        assert waiting.run_after > waiting.updated_at  # backed off
        assert "503" in (waiting.error_message or "") or waiting.error_message
        backoff = (waiting.run_after - waiting.updated_at).total_seconds()
        queue.advance(backoff - 0.5)
        assert rt.jobs.claim("too-early", 1).jobs == []  # still backing off
        queue.advance(1.0)  # the backoff has passed
        second = run_tick(rt.jobs, rt.importer, metrics=rt.metrics, budget_seconds=30, max_jobs=1)
        assert second.to_json()["job_ids"]["failed"] == [str(job.id)]
        failed = rt.jobs.get(job.id)
        assert failed.status is JobStatus.FAILED
        assert "gave up after 2 attempts" in (failed.error_message or "")


def test_a_long_retry_after_keeps_the_lease(
    settings_for: Callable[..., Settings], sandbox: RunningSandbox
) -> None:
    """Retry-After (9 s) longer than the lease (3 s): the wait renews it, nobody steals it."""
    with Runtime.build(settings_for(lease_seconds=3, page_size=100)) as rt:
        faults = Faults(rate_limit_every=2, retry_after=9)
        job = queue_import(rt, sandbox, "kim", size=250, faults=faults)
        stolen: list[Job] = []
        # Each step of the wait moves the queue's clock, then a thief tries to claim the job.
        fake = FakeTime(QueueClock.install(rt.engine), lambda: stolen.extend(thief_claim()))

        def thief_claim() -> list[Job]:
            return rt.jobs.claim("thief", 1).jobs

        (claimed,) = rt.jobs.claim("owner", 1).jobs
        importer = importer_reading(rt, rt.importer._sources, clock=fake, sleep=fake.sleep)
        outcome = importer.run(claimed, ImportBudget())
        assert fake.slept == pytest.approx(18)  # two 429s, each waited out past the lease
        assert stolen == []
        assert outcome.value == "completed"
        finished = rt.jobs.get(job.id)
        assert finished.attempts == 1
        assert_consistent(rt.engine, finished, 250)
