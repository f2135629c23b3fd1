"""A tick that uses its budget: it keeps claiming while a page fits, a few jobs at a time."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest
from sqlalchemy import update

from contact_import.domain.job import JobStatus
from contact_import.providers.base import ContactPage, ContactSource
from contact_import.runner.importer import Importer, SourceFor
from contact_import.runner.tick import TickSummary, run_tick
from contact_import.runtime import Runtime
from contact_import.sandbox.accounts import Faults
from contact_import.sandbox.server import RunningSandbox
from contact_import.settings import Settings
from contact_import.store.jobs import Job
from contact_import.store.schema import jobs
from tests.helpers import assert_consistent, queue_import


def _queue_small_jobs(
    rt: Runtime, sandbox: RunningSandbox, count: int, *, faults: Faults | None = None
) -> list[Job]:
    return [
        queue_import(rt, sandbox, f"user-{i}", size=50, seed=i, faults=faults) for i in range(count)
    ]


def _frozen() -> float:
    """A clock that never moves: the budget never runs out, whatever the machine's speed."""
    return 0.0


def test_one_tick_completes_forty_small_jobs(runtime: Runtime, sandbox: RunningSandbox) -> None:
    queued = _queue_small_jobs(runtime, sandbox, 40)
    summary = run_tick(
        runtime.jobs, runtime.importer, metrics=runtime.metrics,
        budget_seconds=8, max_jobs=1000, concurrency=4, clock=_frozen,
    )  # fmt: skip
    assert summary.claimed == 40
    assert sorted(summary.processed) == sorted(job.id for job in queued)
    body = summary.to_json()
    assert body["message"] == "Processing complete"
    assert (body["processed"], body["failed"]) == (40, 0)
    assert body["job_ids"]["continuing"] == body["job_ids"]["cancelled"] == []
    for job in queued:
        done = runtime.jobs.get(job.id)
        assert done.attempts == 1
        assert_consistent(runtime.engine, done, 50)


def test_max_jobs_caps_the_jobs_one_tick_claims(runtime: Runtime, sandbox: RunningSandbox) -> None:
    _queue_small_jobs(runtime, sandbox, 7)
    summary = run_tick(
        runtime.jobs, runtime.importer, metrics=runtime.metrics,
        budget_seconds=8, max_jobs=5, concurrency=2, clock=_frozen,
    )  # fmt: skip
    assert (summary.claimed, len(summary.processed)) == (5, 5)
    waiting = [j for j in runtime.jobs.list_jobs() if j.status is JobStatus.FETCHING]
    assert len(waiting) == 2
    assert all(j.attempts == 0 for j in waiting)


class _PageClock:
    """Time that passes only while a page is fetched: one second per page."""

    def __init__(self) -> None:
        self.now = 0.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def advancing(self, sources: SourceFor) -> SourceFor:
        clock = self

        class Source:
            def __init__(self, inner: ContactSource) -> None:
                self.inner = inner

            def fetch_page(self, cursor: str | None) -> ContactPage:
                with clock._lock:
                    clock.now += 1.0
                return self.inner.fetch_page(cursor)

        return lambda job, **kwargs: Source(sources(job, **kwargs))


def test_the_tick_stops_claiming_when_no_page_fits_the_budget(
    runtime: Runtime, sandbox: RunningSandbox
) -> None:
    """Budget 10 s, pages of 1 s: the 9th job starts at 8 s (2 s left > one page) and ends at
    9 s; then 1 s left fits no page. The rest are never claimed, so they keep their attempts."""
    queued = _queue_small_jobs(runtime, sandbox, 15)
    clock = _PageClock()
    rt = runtime
    importer = Importer(
        rt.engine, rt.jobs, clock.advancing(rt.importer._sources),
        grants=rt.grants, lease_seconds=30, default_region="US", metrics=rt.metrics,
    )  # fmt: skip
    summary = run_tick(
        rt.jobs, importer, metrics=rt.metrics,
        budget_seconds=10, max_jobs=1000, concurrency=1, clock=clock,
    )  # fmt: skip
    assert (summary.claimed, len(summary.processed)) == (9, 9)
    assert clock.now == 9.0  # no page started that could not finish within budget + one page
    assert summary.processed == [job.id for job in queued[:9]]  # oldest first
    untouched = [rt.jobs.get(job.id) for job in queued[9:]]
    assert all(j.status is JobStatus.FETCHING and j.attempts == 0 for j in untouched)


def test_a_tick_answers_within_budget_plus_one_page(
    settings_for: Callable[..., Settings], sandbox: RunningSandbox
) -> None:
    budget = 0.5
    with Runtime.build(settings_for()) as rt:
        _queue_small_jobs(rt, sandbox, 40, faults=Faults(latency_ms=60))
        started = time.monotonic()
        summary = run_tick(
            rt.jobs, rt.importer, metrics=rt.metrics,
            budget_seconds=budget, max_jobs=1000, concurrency=2,
        )  # fmt: skip
        elapsed = time.monotonic() - started
        assert elapsed <= budget + summary.longest_page_seconds + 0.25, (elapsed, summary)
        assert 2 <= len(summary.processed) == summary.claimed < 40
        assert summary.failed == summary.continuing == []


def _making_due(rt: Runtime, job_id: UUID) -> SourceFor:
    """Sources whose every page fetch lets ``job_id``'s backoff pass (as if minutes went by)."""
    sources = rt.importer._sources

    class Source:
        def __init__(self, inner: ContactSource) -> None:
            self.inner = inner

        def fetch_page(self, cursor: str | None) -> ContactPage:
            past = datetime.now(UTC) - timedelta(minutes=1)
            with rt.engine.begin() as conn:
                conn.execute(update(jobs).where(jobs.c.id == job_id).values(run_after=past))
            return self.inner.fetch_page(cursor)

    return lambda job, **kwargs: Source(sources(job, **kwargs))


def test_a_job_given_back_is_not_claimed_again_by_the_same_tick(
    settings_for: Callable[..., Settings], sandbox: RunningSandbox
) -> None:
    """A transient error releases the job with a backoff; even once it is due again, the tick
    that gave it back moves on to other jobs instead of retrying it in a loop."""
    with Runtime.build(settings_for(provider_max_retries=0)) as rt:
        broken = queue_import(rt, sandbox, "broken", size=50, faults=Faults(server_error_every=1))
        healthy = _queue_small_jobs(rt, sandbox, 6)
        importer = Importer(
            rt.engine, rt.jobs, _making_due(rt, broken.id),
            grants=rt.grants, lease_seconds=30, default_region="US", metrics=rt.metrics,
        )  # fmt: skip
        summary = run_tick(
            rt.jobs, importer, metrics=rt.metrics,
            budget_seconds=8, max_jobs=1000, concurrency=1, clock=_frozen,
        )  # fmt: skip
        assert summary.continuing == [broken.id]
        assert sorted(summary.processed) == sorted(job.id for job in healthy)
        again = rt.jobs.get(broken.id)
        assert again.attempts == 1
        assert again.run_after < datetime.now(UTC)  # due: only this tick passed it over
        assert [j.id for j in rt.jobs.claim("next-tick", 5).jobs] == [broken.id]


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
@pytest.mark.postgres
def test_concurrent_ticks_never_run_a_job_twice(
    settings_for: Callable[..., Settings], sandbox: RunningSandbox
) -> None:
    settings = settings_for(tick_concurrency=4)
    with Runtime.build(settings) as first, Runtime.build(settings) as second:
        queued = _queue_small_jobs(first, sandbox, 60)
        barrier = threading.Barrier(3)

        def tick(rt: Runtime) -> TickSummary:
            barrier.wait()
            return run_tick(
                rt.jobs, rt.importer, metrics=rt.metrics,
                budget_seconds=8, max_jobs=1000, concurrency=4, clock=_frozen,
            )  # fmt: skip

        with ThreadPoolExecutor(3) as pool:
            summaries = list(pool.map(tick, [first, second, first]))
    runs = Counter(job_id for s in summaries for job_id in s.processed)
    assert set(runs) == {job.id for job in queued}
    assert max(runs.values()) == 1
    assert sum(s.claimed for s in summaries) == 60
    assert sum(1 for s in summaries if s.processed) >= 2  # they really did share the queue
    with Runtime.build(settings) as rt:
        for job in queued:
            done = rt.jobs.get(job.id)
            assert done.attempts == 1
            assert_consistent(rt.engine, done, 50)
