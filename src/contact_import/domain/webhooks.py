"""Webhook events: their types, what a delivery attempt's answer means, and the retry
schedule. Pure: no clock reads, no I/O."""

from __future__ import annotations

from enum import StrEnum

from contact_import.domain.job import JobStatus

__all__ = [
    "RETRY_SCHEDULE",
    "EventStatus",
    "EventType",
    "is_delivered",
    "job_event_type",
    "retry_delay",
]


class EventType(StrEnum):
    IMPORT_COMPLETED = "import.completed"
    IMPORT_FAILED = "import.failed"
    IMPORT_CANCELLED = "import.cancelled"
    CONNECTION_REVOKED = "connection.revoked"


class EventStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    GAVE_UP = "gave_up"


_JOB_EVENTS = {
    JobStatus.COMPLETED: EventType.IMPORT_COMPLETED,
    JobStatus.FAILED: EventType.IMPORT_FAILED,
    JobStatus.CANCELLED: EventType.IMPORT_CANCELLED,
}

# Seconds to wait before each retry: the first within seconds (a receiver restarting), then
# growing; the last one is about 23.7 hours after the first attempt. 11 attempts in all.
RETRY_SCHEDULE: tuple[float, ...] = (
    5, 30, 120, 600, 1800, 3600, 7200, 14400, 28800, 28800,
)  # fmt: skip


def job_event_type(status: JobStatus) -> EventType | None:
    """The event a job ending with ``status`` emits; None for a status that is not an end."""
    return _JOB_EVENTS.get(status)


def is_delivered(status_code: int | None) -> bool:
    """Standard Webhooks: any 2xx is a delivery; anything else (a redirect too) is retried."""
    return status_code is not None and 200 <= status_code < 300


def retry_delay(attempts_made: int) -> float | None:
    """Seconds until the next attempt after ``attempts_made`` failed ones; None: give up."""
    if attempts_made < 1:
        return 0.0
    if attempts_made > len(RETRY_SCHEDULE):
        return None
    return RETRY_SCHEDULE[attempts_made - 1]
