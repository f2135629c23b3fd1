"""Job statuses and the retry decision: pure, no clock reads."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "ACTIVE_STATUSES",
    "FINAL_STATUSES",
    "JobStatus",
    "RetryDecision",
    "backoff_seconds",
    "decide_retry",
]


class JobStatus(StrEnum):
    """The original's status names: a new job is ``fetching`` until a worker claims it."""

    FETCHING = "fetching"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


ACTIVE_STATUSES = (JobStatus.FETCHING, JobStatus.PROCESSING)
FINAL_STATUSES = (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)


def backoff_seconds(attempt: int, jitter: float, *, base: float = 5.0, cap: float = 600.0) -> float:
    """Exponential backoff for the retry after ``attempt`` (1-based), with full-range jitter.

    ``jitter`` is a number in [0, 1) supplied by the caller, so this stays deterministic.
    The delay lies in [d/2, d] where d = min(cap, base * 2**(attempt-1)).
    """
    exponent = min(max(0, attempt - 1), 62)  # past 2**62 the cap wins anyway; no overflow
    ceiling = min(cap, base * 2.0**exponent)
    return ceiling / 2 + (ceiling / 2) * jitter


@dataclass(frozen=True, slots=True)
class RetryDecision:
    """Either retry after ``delay`` seconds or give up (``delay`` is None)."""

    delay: float | None

    @property
    def give_up(self) -> bool:
        return self.delay is None


def decide_retry(
    attempts: int,
    max_attempts: int,
    jitter: float,
    retry_after: float | None = None,
    *,
    max_retry_after: float = 3600.0,
) -> RetryDecision:
    """What to do after a transient failure of attempt number ``attempts``.

    A provider's ``Retry-After`` wins over our own backoff when it is longer, bounded by
    ``max_retry_after`` so a broken header cannot park a job for a year.
    """
    if attempts >= max_attempts:
        return RetryDecision(None)
    delay = backoff_seconds(attempts, jitter)
    if retry_after is not None:
        delay = max(delay, min(retry_after, max_retry_after))
    return RetryDecision(delay)
