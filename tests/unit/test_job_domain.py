"""Job statuses, backoff and the retry decision."""

from __future__ import annotations

from itertools import pairwise

import pytest

from contact_import.domain.job import (
    ACTIVE_STATUSES,
    FINAL_STATUSES,
    JobStatus,
    RetryDecision,
    backoff_seconds,
    decide_retry,
)

# --- backoff ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attempt", "ceiling"),
    [(1, 5.0), (2, 10.0), (3, 20.0), (4, 40.0), (5, 80.0), (7, 320.0), (8, 600.0), (30, 600.0)],
)
def test_backoff_ceiling_doubles_each_attempt_until_the_cap(attempt: int, ceiling: float) -> None:
    assert backoff_seconds(attempt, 0.0) == ceiling / 2
    assert backoff_seconds(attempt, 1.0) == ceiling


@pytest.mark.parametrize("jitter", [0.0, 0.5, 0.999])
def test_backoff_grows_with_attempts(jitter: float) -> None:
    delays = [backoff_seconds(a, jitter) for a in range(1, 8)]
    assert delays == sorted(delays)
    assert all(later == 2 * earlier for earlier, later in pairwise(delays))


@pytest.mark.parametrize("attempt", [1, 2, 3, 6, 10, 50])
@pytest.mark.parametrize("jitter", [0.0, 0.1, 0.25, 0.5, 0.75, 0.999])
def test_jitter_keeps_the_delay_between_half_and_full_ceiling(attempt: int, jitter: float) -> None:
    ceiling = min(600.0, 5.0 * 2 ** (attempt - 1))
    assert ceiling / 2 <= backoff_seconds(attempt, jitter) <= ceiling


def test_more_jitter_means_a_longer_wait() -> None:
    assert backoff_seconds(3, 0.1) < backoff_seconds(3, 0.5) < backoff_seconds(3, 0.9)


def test_backoff_respects_custom_base_and_cap() -> None:
    assert backoff_seconds(1, 1.0, base=1.0, cap=10.0) == 1.0
    assert backoff_seconds(4, 1.0, base=1.0, cap=10.0) == 8.0
    assert backoff_seconds(5, 1.0, base=1.0, cap=10.0) == 10.0
    assert backoff_seconds(5, 0.0, base=1.0, cap=10.0) == 5.0


def test_attempt_zero_waits_like_the_first_attempt() -> None:
    assert backoff_seconds(0, 0.5) == backoff_seconds(1, 0.5)


def test_backoff_stays_capped_for_any_attempt_number() -> None:
    assert backoff_seconds(5000, 0.5) == 450.0


# --- retry decision -----------------------------------------------------------------------


@pytest.mark.parametrize(("attempts", "max_attempts"), [(5, 5), (6, 5), (1, 1), (0, 0)])
def test_gives_up_once_max_attempts_is_reached(attempts: int, max_attempts: int) -> None:
    decision = decide_retry(attempts, max_attempts, 0.5)
    assert decision.give_up
    assert decision.delay is None


def test_gives_up_even_when_the_provider_asks_to_retry_later() -> None:
    assert decide_retry(5, 5, 0.5, retry_after=30.0).give_up


@pytest.mark.parametrize("attempts", [1, 2, 3, 4])
def test_retries_with_backoff_before_max_attempts(attempts: int) -> None:
    decision = decide_retry(attempts, 5, 0.5)
    assert not decision.give_up
    assert decision.delay == backoff_seconds(attempts, 0.5)


def test_longer_retry_after_wins_over_backoff() -> None:
    assert decide_retry(1, 5, 0.5, retry_after=120.0) == RetryDecision(120.0)


@pytest.mark.parametrize("retry_after", [0.0, 1.0, 3.0])
def test_shorter_retry_after_does_not_shorten_the_backoff(retry_after: float) -> None:
    assert decide_retry(2, 5, 0.5, retry_after=retry_after).delay == backoff_seconds(2, 0.5)


@pytest.mark.parametrize("retry_after", [3601.0, 86_400.0 * 365, float("inf")])
def test_huge_retry_after_is_capped(retry_after: float) -> None:
    assert decide_retry(1, 5, 0.5, retry_after=retry_after).delay == 3600.0


def test_custom_max_retry_after_caps_the_header() -> None:
    decision = decide_retry(1, 5, 0.5, retry_after=1000.0, max_retry_after=60.0)
    assert decision.delay == 60.0


def test_cap_on_retry_after_never_shortens_our_own_backoff() -> None:
    decision = decide_retry(8, 10, 1.0, retry_after=1000.0, max_retry_after=60.0)
    assert decision.delay == 600.0


def test_negative_retry_after_is_ignored() -> None:
    assert decide_retry(1, 5, 0.0, retry_after=-10.0).delay == 2.5


# --- statuses -----------------------------------------------------------------------------


def test_job_status_values_are_exactly_the_originals() -> None:
    assert [s.value for s in JobStatus] == [
        "fetching",
        "processing",
        "completed",
        "failed",
        "cancelled",
    ]


@pytest.mark.parametrize("value", ["fetching", "processing", "completed", "failed", "cancelled"])
def test_job_status_round_trips_through_its_stored_text(value: str) -> None:
    assert JobStatus(value) == value
    assert str(JobStatus(value)) == value


def test_active_and_final_statuses_split_every_status_exactly_once() -> None:
    assert set(ACTIVE_STATUSES).isdisjoint(FINAL_STATUSES)
    assert set(ACTIVE_STATUSES) | set(FINAL_STATUSES) == set(JobStatus)
    assert set(ACTIVE_STATUSES) == {JobStatus.FETCHING, JobStatus.PROCESSING}
