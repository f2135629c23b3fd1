"""Completion webhooks: a real receiver on loopback, verified with the standardwebhooks library.

The deliverer's clock (when an event is due, when it is retried) is a test clock moved by
hand, so the retry schedule is tested without waiting; signatures carry the real time, which
the receiver's library checks.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import WebhookVerificationError

from contact_import.domain.job import JobStatus
from contact_import.domain.webhooks import RETRY_SCHEDULE, EventStatus
from contact_import.runner.tick import run_tick
from contact_import.runner.webhooks import Deliverer
from contact_import.runner.worker import Worker
from contact_import.runtime import Runtime
from contact_import.sandbox.accounts import Faults
from contact_import.sandbox.server import RunningSandbox
from contact_import.settings import Settings
from contact_import.store.jobs import Checkpoint, JobStore, PageCounts, checkpoint
from contact_import.store.webhooks import enqueue_event
from contact_import.web.schemas import JobOut
from tests.helpers import drain, free_port, queue_import
from tests.integration.test_database_outage import _messages, _refused_url, _wait_until, running
from tests.webhook_receiver import Receiver, new_secret

SECRET = new_secret()


class Clock:
    """The deliverer's wall clock, moved by the test."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver(free_port()).running() as running:
        yield running


@pytest.fixture
def hooked(settings_for: Callable[..., Settings], receiver: Receiver) -> Iterator[Runtime]:
    settings = settings_for(webhook_url=receiver.url, webhook_secret=SECRET, page_size=100)
    with Runtime.build(settings) as rt:
        yield rt


def deliverer_of(rt: Runtime, clock: Clock) -> Deliverer:
    assert rt.deliverer is not None
    return dataclasses.replace(rt.deliverer, clock=clock)


def test_one_completed_event_per_import_with_the_right_counts(
    hooked: Runtime, sandbox: RunningSandbox, receiver: Receiver
) -> None:
    first = queue_import(hooked, sandbox, "ada", size=250, seed=3)
    second = queue_import(hooked, sandbox, "bob", size=40, seed=4, provider="microsoft")
    drain(hooked)
    assert receiver.received == []  # nothing is sent on the import's path
    assert hooked.deliverer is not None
    done = hooked.deliverer.deliver_due()
    assert (done.delivered, done.retrying, done.gave_up) == (2, 0, 0)
    events = {r.verified(SECRET)["data"]["id"]: r for r in receiver.received}
    assert set(events) == {str(first.id), str(second.id)}
    for job_id, size in ((first.id, 250), (second.id, 40)):
        got = events[str(job_id)]
        body = got.verified(SECRET)
        job = hooked.jobs.get(job_id)
        assert body["type"] == "import.completed"
        # the status route's JSON, and whose job it is
        assert body["data"] == JobOut.of(job).model_dump(mode="json") | {"user_id": job.user_id}
        assert body["data"]["processed_contacts"] == size
        assert body["data"]["created_contacts"] == job.created_contacts > 0
        assert got.headers["webhook-id"].startswith("msg_")
    assert hooked.deliverer.deliver_due().attempts == 0  # at least once, not again
    delivered = hooked.outbox.list_events()
    assert {e.status for e in delivered} == {EventStatus.DELIVERED}


def test_a_wrong_secret_fails_verification_and_every_configured_secret_signs(
    settings_for: Callable[..., Settings], sandbox: RunningSandbox, receiver: Receiver
) -> None:
    old = new_secret()
    settings = settings_for(webhook_url=receiver.url, webhook_secret=f"{SECRET} {old}")
    with Runtime.build(settings) as rt:
        queue_import(rt, sandbox, "cy", size=10)
        drain(rt)
        assert rt.deliverer is not None
        rt.deliverer.deliver_due()
    (got,) = receiver.wait_for(1, 5)
    assert got.verified(SECRET)["type"] == "import.completed"
    assert got.verified(old)["type"] == "import.completed"  # a receiver not yet rotated
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    with pytest.raises(WebhookVerificationError):
        got.verified(new_secret())
    tampered = dataclasses.replace(got, body=got.body.replace(b"completed", b"cancelled", 1))
    with pytest.raises(WebhookVerificationError):
        tampered.verified(SECRET)


def test_receiver_down_for_the_first_attempts_then_delivered_with_the_same_id(
    settings_for: Callable[..., Settings], sandbox: RunningSandbox
) -> None:
    down = Receiver(free_port(), statuses=[200])
    settings = settings_for(webhook_url=down.url, webhook_secret=SECRET)
    with Runtime.build(settings) as rt:
        job = queue_import(rt, sandbox, "dee", size=20)
        drain(rt)
        clock = Clock()
        deliverer = deliverer_of(rt, clock)
        assert deliverer.deliver_due().retrying == 1  # connection refused
        assert deliverer.deliver_due().attempts == 0  # not due yet
        clock.advance(RETRY_SCHEDULE[0])
        assert deliverer.deliver_due().retrying == 1
        (event,) = rt.outbox.list_events(failed_only=True)
        assert event.attempts == 2
        assert event.status is EventStatus.PENDING
        assert event.next_attempt_at == clock.now + timedelta(seconds=RETRY_SCHEDULE[1])
        with down.running():
            clock.advance(RETRY_SCHEDULE[1])
            assert deliverer.deliver_due().delivered == 1
        attempts = rt.outbox.attempts_of(event.id)
    (got,) = down.received
    assert got.headers["webhook-id"] == event.id
    assert got.verified(SECRET)["data"]["id"] == str(job.id)
    assert [a.status_code for a in attempts] == [None, None, 200]
    assert attempts[0].error is not None
    assert attempts[2].error is None


def test_non_2xx_is_retried_on_the_schedule_then_given_up_and_retry_makes_it_due(
    hooked: Runtime, sandbox: RunningSandbox, receiver: Receiver
) -> None:
    receiver.statuses = [500] * (len(RETRY_SCHEDULE) + 1) + [204]
    queue_import(hooked, sandbox, "eve", size=5)
    drain(hooked)
    clock = Clock()
    deliverer = deliverer_of(hooked, clock)
    for wait in (0.0, *RETRY_SCHEDULE):
        clock.advance(wait)
        assert deliverer.deliver_due().attempts == 1
    assert deliverer.deliver_due().attempts == 0
    (event,) = hooked.outbox.list_events(failed_only=True)
    assert event.status is EventStatus.GAVE_UP
    assert event.attempts == len(RETRY_SCHEDULE) + 1
    assert event.last_error == "HTTP 500"
    assert sum(RETRY_SCHEDULE) == pytest.approx(23.7 * 3600, rel=0.01)  # about a day
    hooked.outbox.retry(event.id, clock.now)
    assert deliverer.deliver_due().delivered == 1
    ids = {r.headers["webhook-id"] for r in receiver.received}
    assert ids == {event.id}  # the same id on all 12 attempts
    assert len(receiver.received) == len(RETRY_SCHEDULE) + 2


def test_failed_and_cancelled_jobs_emit_their_events(
    hooked: Runtime, sandbox: RunningSandbox, receiver: Receiver
) -> None:
    revoked = queue_import(hooked, sandbox, "fay", size=5, faults=Faults(revoked=True))
    drain(hooked)
    unheld = queue_import(hooked, sandbox, "gus", size=5)
    hooked.jobs.cancel(unheld.id)
    # Two workers that "die" holding a job: leases that expire at once.
    dying = JobStore(hooked.engine, lease_seconds=0.5, max_attempts=1, webhooks=True)
    flagged = queue_import(hooked, sandbox, "hal", size=5)
    dying.claim("dead-worker", 10)
    hooked.jobs.cancel(flagged.id)  # held: only flagged; the reap cancels it
    grant = hooked.grants.create("ivy", "google", access_token=sandbox.state.add_account(size=5))
    gave_up, _ = dying.create("ivy", "google", grant)  # one attempt allowed
    dying.claim("dead-worker", 10)
    threading.Event().wait(0.6)
    assert hooked.jobs.reap() == (1, 1)
    assert hooked.deliverer is not None
    assert hooked.deliverer.deliver_due().delivered == 4
    types = {r.event["data"]["id"]: r.event["type"] for r in receiver.received}
    assert types == {
        str(revoked.id): "import.failed",
        str(unheld.id): "import.cancelled",
        str(flagged.id): "import.cancelled",
        str(gave_up.id): "import.failed",
    }
    statuses = {r.event["data"]["id"]: r.event["data"]["status"] for r in receiver.received}
    assert statuses[str(revoked.id)] == JobStatus.FAILED.value


def test_events_of_one_job_are_delivered_in_order(
    hooked: Runtime, sandbox: RunningSandbox, receiver: Receiver
) -> None:
    receiver.statuses = [503, 200]
    job = queue_import(hooked, sandbox, "jo", size=5)
    hooked.jobs.cancel(job.id)  # event 1: import.cancelled
    hooked.jobs.retry(job.id)
    drain(hooked)  # event 2: import.completed
    clock = Clock()
    deliverer = deliverer_of(hooked, clock)
    done = deliverer.deliver_due()
    # event 1 failed; event 2 is due too but waits until event 1 is delivered or given up
    assert (done.retrying, done.delivered) == (1, 0)
    clock.advance(RETRY_SCHEDULE[0])
    assert deliverer.deliver_due().delivered == 2
    assert [r.event["type"] for r in receiver.received] == [
        "import.cancelled",
        "import.cancelled",
        "import.completed",
    ]


def test_a_tick_delivers_the_events_of_the_imports_it_finished(
    hooked: Runtime, sandbox: RunningSandbox, receiver: Receiver
) -> None:
    job = queue_import(hooked, sandbox, "kit", size=30)
    summary = run_tick(
        hooked.jobs,
        hooked.importer,
        metrics=hooked.metrics,
        budget_seconds=20,
        max_jobs=1,
        deliverer=hooked.deliverer,
        retention=hooked.retention,
    )
    assert summary.processed == [job.id]
    (got,) = receiver.received
    assert got.verified(SECRET)["data"]["id"] == str(job.id)
    sample = hooked.metrics.registry.get_sample_value
    assert sample("contact_import_webhook_deliveries_total", {"outcome": "delivered"}) == 1
    assert sample("contact_import_webhook_outbox_depth") == 0


def test_a_slow_receiver_does_not_slow_the_imports(
    hooked: Runtime, sandbox: RunningSandbox, receiver: Receiver
) -> None:
    # Long enough that a second import held up by the first delivery would end a whole delay
    # after the first, while one that was not has room for a loaded machine (a CI run saw
    # 1.8 s between the two ends with a 3 s delay and a 1.5 s bound).
    receiver.delay = 5.0
    first = queue_import(hooked, sandbox, "lou", size=50)
    second = queue_import(hooked, sandbox, "max", size=50)
    worker = Worker(
        hooked.jobs,
        hooked.importer,
        metrics=hooked.metrics,
        concurrency=1,  # one import at a time: the second waits for nothing but the first
        poll_seconds=0.05,
        deliverer=hooked.deliverer,
    )
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        answers = receiver.wait_for(2, 30)
    finally:
        worker.request_stop()
        thread.join(timeout=30)
    ended = [hooked.jobs.get(j.id) for j in (first, second)]
    assert all(j.status is JobStatus.COMPLETED for j in ended)
    assert ended[0].completed_at is not None
    assert ended[1].completed_at is not None
    # Both imports ended well before the receiver answered the first event (5 s after it came).
    gap = (ended[1].completed_at - ended[0].completed_at).total_seconds()
    assert abs(gap) < receiver.delay / 2
    assert answers[1].answered_at - answers[0].answered_at >= receiver.delay * 0.9
    assert {a.verified(SECRET)["data"]["id"] for a in answers} == {str(first.id), str(second.id)}


def test_concurrent_deliverers_never_claim_the_same_event(hooked: Runtime) -> None:
    with hooked.engine.begin() as conn:
        for n in range(40):
            enqueue_event(conn, "connection.revoked", {"n": n})
    later = datetime.now(UTC) + timedelta(seconds=1)
    claims: dict[str, list[str]] = {"a": [], "b": []}

    def claim_all(name: str) -> None:
        while batch := hooked.outbox.claim_due(name, 3, later):
            claims[name].extend(e.id for e in batch)

    threads = [threading.Thread(target=claim_all, args=(name,)) for name in claims]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    both = claims["a"] + claims["b"]
    assert len(both) == len(set(both)) == 40
    sample = hooked.metrics.registry.get_sample_value
    assert sample("contact_import_webhook_outbox_depth") == 40
    oldest = sample("contact_import_webhook_oldest_pending_age_seconds")
    assert oldest is not None
    assert 0 <= oldest < 60


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_delivery_thread_waits_out_a_database_it_cannot_reach(
    settings_for: Callable[..., Settings], receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_for(
        database_url=_refused_url(), webhook_url=receiver.url, webhook_secret=SECRET
    )
    gone = "webhook delivery: database unavailable; retrying until it is back"
    with Runtime.build(settings) as rt:
        worker = Worker(
            rt.jobs,
            rt.importer,
            metrics=rt.metrics,
            concurrency=1,
            poll_seconds=0.05,
            deliverer=rt.deliverer,
        )
        with running(worker) as thread:
            _wait_until(lambda: bool(_messages(caplog, gone)), 20, "the outage to be noticed")
            threading.Event().wait(1.5)  # several more failed tries, at a backed-off pace
            assert thread.is_alive()
    assert worker.failure is None
    assert len(_messages(caplog, gone)) == 1
    assert not [r for r in caplog.records if r.getMessage() == "webhook delivery failed"]


def test_without_a_webhook_url_nothing_is_written(
    runtime: Runtime, sandbox: RunningSandbox
) -> None:
    queue_import(runtime, sandbox, "nia", size=5)
    drain(runtime)
    cancelled = queue_import(runtime, sandbox, "ola", size=5)
    runtime.jobs.cancel(cancelled.id)
    assert runtime.deliverer is None
    assert runtime.outbox.list_events() == []


def test_an_end_that_rolls_back_leaves_no_event(hooked: Runtime, sandbox: RunningSandbox) -> None:
    queue_import(hooked, sandbox, "pat", size=5)
    (claimed,) = hooked.jobs.claim("w", 1).jobs
    last = Checkpoint(PageCounts(created=1), next_cursor=None)

    def last_page_then_a_failure() -> None:
        with hooked.engine.begin() as conn:
            checkpoint(conn, claimed.lease, last, lease_seconds=30, webhooks=True)
            raise RuntimeError("the rest of the page's write failed")

    with pytest.raises(RuntimeError):
        last_page_then_a_failure()
    assert hooked.outbox.list_events() == []
    assert hooked.jobs.get(claimed.id).status is JobStatus.PROCESSING
    hooked.jobs.finish(claimed.lease, JobStatus.FAILED, "gave up")
    (event,) = hooked.outbox.list_events()
    assert (event.type, event.job_id) == ("import.failed", claimed.id)
