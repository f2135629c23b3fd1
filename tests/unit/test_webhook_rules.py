"""Webhook rules without I/O: event types, what counts as delivered, the retry schedule, the
settings' secret checks, and the event body."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from uuid import UUID

import pytest

from contact_import.domain.job import JobStatus
from contact_import.domain.webhooks import (
    RETRY_SCHEDULE,
    EventType,
    is_delivered,
    job_event_type,
    retry_delay,
)
from contact_import.errors import ConfigError
from contact_import.settings import Settings
from contact_import.store.webhooks import event_body, new_event_id
from tests.webhook_receiver import new_secret


@pytest.mark.parametrize(
    ("status", "event"),
    [
        (JobStatus.COMPLETED, EventType.IMPORT_COMPLETED),
        (JobStatus.FAILED, EventType.IMPORT_FAILED),
        (JobStatus.CANCELLED, EventType.IMPORT_CANCELLED),
        (JobStatus.FETCHING, None),
        (JobStatus.PROCESSING, None),
    ],
)
def test_only_an_end_emits_an_event(status: JobStatus, event: EventType | None) -> None:
    assert job_event_type(status) == event


@pytest.mark.parametrize(
    ("code", "delivered"),
    [(200, True), (204, True), (299, True), (301, False), (302, False), (400, False),
     (410, False), (500, False), (None, False)],
)  # fmt: skip
def test_only_a_2xx_delivers(code: int | None, delivered: bool) -> None:
    assert is_delivered(code) is delivered


def test_the_retry_schedule_starts_within_seconds_grows_and_lasts_about_a_day() -> None:
    delays = [retry_delay(n) for n in range(1, len(RETRY_SCHEDULE) + 2)]
    assert delays[0] is not None
    assert delays[0] <= 10
    steps = [d for d in delays if d is not None]
    assert steps == sorted(steps)
    assert 20 * 3600 <= sum(steps) <= 30 * 3600
    assert delays[-1] is None  # then give up


def _settings(**values: object) -> Settings:
    return Settings(contact_import_env="development", **values)  # type: ignore[arg-type]


def test_webhook_secrets_are_checked_without_repeating_them() -> None:
    good, older = new_secret(), new_secret()
    assert _settings(webhook_url="https://h.example/in", webhook_secret=f" {good}  {older} ")\
        .webhook_secrets() == [good, older]  # fmt: skip
    with pytest.raises(ConfigError, match="WEBHOOK_SECRET is not"):
        _settings(webhook_url="https://h.example/in").webhook_secrets()
    for bad in ("not-a-secret-at-all", "whsec_!!!notbase64", "whsec_c2hvcnQ="):
        with pytest.raises(ConfigError) as caught:
            _settings(webhook_url="https://h.example/in", webhook_secret=f"{good} {bad}")\
                .webhook_secrets()  # fmt: skip
        assert "secret 2 of 2" in str(caught.value)
        assert bad not in str(caught.value)
        assert good not in str(caught.value)
    assert good not in repr(_settings(webhook_secret=good))


def test_webhook_url_must_be_http() -> None:
    with pytest.raises(ValueError, match="WEBHOOK_URL"):
        _settings(webhook_url="ftp://h.example/in")
    assert _settings(webhook_url="  ").webhook_url is None


def test_the_body_is_type_timestamp_and_data() -> None:
    at = datetime(2026, 12, 1, 12, 0, 0, 250000, tzinfo=UTC)
    body = json.loads(event_body("import.completed", {"id": str(UUID(int=1))}, at))
    assert body == {
        "type": "import.completed",
        "timestamp": "2026-12-01T12:00:00.250000Z",
        "data": {"id": "00000000-0000-0000-0000-000000000001"},
    }
    assert new_event_id().startswith("msg_")
    assert new_event_id() != new_event_id()
