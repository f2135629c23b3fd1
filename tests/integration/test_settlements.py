"""A release that meets a real outage (a stopped throwaway cluster) waits, and lands when the
database is back, unless the lease was lost meanwhile: the fence stays strict."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from contact_import.errors import DatabaseUnavailable
from contact_import.runner.settlements import PendingSettlements, Settlement
from contact_import.runtime import Runtime
from contact_import.settings import Settings
from contact_import.store.clock import QueueClock
from contact_import.store.jobs import Job, JobStore
from tests.pg_cluster import PgCluster

pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.parametrize("database_url", ["cluster"], indirect=True),
]


@pytest.fixture
def rt(settings: Settings) -> Iterator[Runtime]:
    with Runtime.build(settings) as runtime:
        yield runtime


def _claimed(jobs: JobStore, user: str) -> Job:
    jobs.create(user, "google")
    (job,) = jobs.claim(f"worker-of-{user}", 1).jobs
    return job


def _wait_out_and_queue(pending: PendingSettlements, settlement: Settlement) -> None:
    """What the importer does when its release meets the outage."""
    with pytest.raises(DatabaseUnavailable):
        pending.apply(settlement)
    pending.add(settlement)
    with pytest.raises(DatabaseUnavailable):
        pending.retry()  # still down: it stays queued
    assert len(pending) == 1


def test_a_release_that_met_an_outage_lands_when_the_database_is_back(
    rt: Runtime, pg_cluster: PgCluster
) -> None:
    job = _claimed(rt.jobs, "olga")
    assert job.attempts == 1
    pending = PendingSettlements(rt.jobs)
    pg_cluster.stop()
    try:
        _wait_out_and_queue(pending, Settlement(job.lease, refund=True))
    finally:
        pg_cluster.start()
    assert pending.retry() == 1
    assert len(pending) == 0
    released = rt.jobs.get(job.id)
    assert released.locked_by is None
    assert released.attempts == 0  # refunded: the outage used up nothing
    (again,) = rt.jobs.claim("next", 1).jobs
    assert again.id == job.id


def test_a_waiting_release_whose_lease_was_lost_is_dropped(
    rt: Runtime, pg_cluster: PgCluster
) -> None:
    queue = QueueClock.install(rt.engine)
    short = JobStore(rt.engine, lease_seconds=30)
    job = _claimed(short, "pavel")
    pending = PendingSettlements(short)
    pg_cluster.stop()
    try:
        _wait_out_and_queue(pending, Settlement(job.lease, refund=True))
    finally:
        pg_cluster.start()
    queue.advance(31)  # the lease expires (database clock) ...
    (taken,) = short.claim("someone-else", 1).jobs  # ... and another worker takes the job
    assert taken.id == job.id
    assert pending.retry() == 0
    assert len(pending) == 0
    after = rt.jobs.get(job.id)
    assert after.locked_by == taken.locked_by  # the late release did not touch the new lease
    assert after.attempts == 2
