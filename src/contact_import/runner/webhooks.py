"""Delivering the webhook outbox: claim due events, POST them signed, record each attempt.

Signing is the ``standardwebhooks`` package's: ``webhook-signature`` carries one ``v1,…``
signature per configured secret (newest first), so a receiver that knows any of them during
a rotation verifies the event. ``webhook-id`` is the event's id on every attempt (receivers
dedupe on it); ``webhook-timestamp`` is the attempt's own wall-clock time, which the
receiver's library checks against its clock (five minutes either way).

A 2xx delivers; anything else (another status, a redirect: none is followed, a timeout, a
refused connection) is retried on ``domain.webhooks.RETRY_SCHEDULE``, then given up.
Deliveries run on their own thread in a worker and after the imports in a tick, never on an
import's page path, each POST bounded by WEBHOOK_TIMEOUT_SECONDS.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
from standardwebhooks import Webhook

from contact_import.domain.webhooks import is_delivered, retry_delay
from contact_import.metrics import Metrics
from contact_import.store.jobs import new_worker_name
from contact_import.store.outbox import Attempt, Outbox, OutboxEvent

__all__ = ["Deliverer", "DeliveryPass"]

log = logging.getLogger("contact_import.webhooks")

# A POST is not started with less time than this left in a tick's share of the budget.
_MIN_POST_SECONDS = 0.5


@dataclass
class DeliveryPass:
    """What one pass did: attempts by outcome."""

    delivered: int = 0
    retrying: int = 0
    gave_up: int = 0

    @property
    def attempts(self) -> int:
        return self.delivered + self.retrying + self.gave_up


@dataclass
class Deliverer:
    """Delivers due events of ``outbox`` to ``url``, one at a time.

    ``clock`` decides when an event is due and when it is retried (tests move it instead of
    waiting); ``monotonic`` measures durations and budgets.
    """

    outbox: Outbox
    http: httpx.Client
    url: str
    secrets: list[str]
    metrics: Metrics
    timeout_seconds: float = 10.0
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    monotonic: Callable[[], float] = time.monotonic
    name: str = field(default_factory=new_worker_name)

    def __post_init__(self) -> None:
        self._signers = [Webhook(secret) for secret in self.secrets]

    def deliver_due(self, *, seconds: float | None = None, limit: int = 100) -> DeliveryPass:
        """Deliver due events until none is due, ``limit`` attempts were made, or
        ``seconds`` (when given) run out; raises the database's errors, never the receiver's.
        """
        deadline = None if seconds is None else self.monotonic() + seconds
        done = DeliveryPass()
        while done.attempts < limit:
            timeout = self._time_left(deadline)
            if timeout is None:
                break
            claimed = self.outbox.claim_due(self.name, 1, self.clock())
            if not claimed:
                break
            outcome = self.deliver(claimed[0], timeout)
            setattr(done, outcome, getattr(done, outcome) + 1)
        return done

    def _time_left(self, deadline: float | None) -> float | None:
        """The timeout of the next POST; None: no time for one."""
        if deadline is None:
            return self.timeout_seconds
        left = deadline - self.monotonic()
        return None if left < _MIN_POST_SECONDS else min(self.timeout_seconds, left)

    def deliver(self, event: OutboxEvent, timeout: float) -> str:
        """POST one claimed event, record the attempt; its outcome (a metrics label)."""
        attempt = self._post(event, timeout)
        now = self.clock()
        delay = None if attempt.error is None else retry_delay(event.attempts + 1)
        retry_at = None if delay is None else now + timedelta(seconds=delay)
        if not self.outbox.record_attempt(event, attempt, now=now, retry_at=retry_at):
            log.warning("webhook lease lost while delivering", extra=_fields(event))
        outcome = _outcome(attempt, retry_at)
        self.metrics.record_delivery(outcome)
        log.log(
            logging.INFO if outcome == "delivered" else logging.WARNING,
            "webhook %s",
            outcome,
            extra=_fields(event) | {"status_code": attempt.status_code, "error": attempt.error},
        )
        return outcome

    def headers(self, event: OutboxEvent, at: datetime) -> dict[str, str]:
        """The Standard Webhooks headers of one attempt, signed with every secret."""
        signatures = " ".join(s.sign(event.id, at, event.payload) for s in self._signers)
        return {
            "content-type": "application/json",
            "webhook-id": event.id,
            "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": signatures,
        }

    def _post(self, event: OutboxEvent, timeout: float) -> Attempt:
        # The receiver's clock checks this one: always the real time, never the test clock.
        headers = self.headers(event, datetime.now(UTC))
        started = self.monotonic()
        try:
            response = self.http.post(
                self.url,
                content=event.payload.encode(),
                headers=headers,
                timeout=httpx.Timeout(timeout, connect=min(5.0, timeout)),
                follow_redirects=False,
            )
        except httpx.HTTPError as exc:
            return Attempt(None, self._ms(started), f"{type(exc).__name__}: no answer")
        ms = self._ms(started)
        if is_delivered(response.status_code):
            return Attempt(response.status_code, ms)
        return Attempt(response.status_code, ms, f"HTTP {response.status_code}")

    def _ms(self, started: float) -> int:
        return max(0, round((self.monotonic() - started) * 1000))


def _outcome(attempt: Attempt, retry_at: datetime | None) -> str:
    if attempt.error is None:
        return "delivered"
    return "gave_up" if retry_at is None else "retrying"


def _fields(event: OutboxEvent) -> dict[str, object]:
    fields = {"event_id": event.id, "event_type": event.type, "attempt": event.attempts + 1}
    return fields if event.job_id is None else fields | {"job_id": str(event.job_id)}
