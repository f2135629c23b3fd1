"""The status page's view: how long a queued job waited, a running job's rate and time left,
the connected account; and the page rendered from it. Pure: the clock is a parameter."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import pytest

from contact_import.web.pages.progress_view import (
    describe_duration,
    job_pace,
    progress_out,
    status_view,
)
from contact_import.web.pages.render import status_page
from contact_import.web.schemas import JobOut

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def job(status: str, *, processed: int = 0, total: int = 0, age: float = 0.0) -> JobOut:
    """A job that started (was queued) ``age`` seconds before NOW."""
    started = NOW - timedelta(seconds=age)
    return JobOut(
        id=uuid.UUID(int=7), provider="google", status=status, total_contacts=total,
        processed_contacts=processed, created_contacts=processed, updated_contacts=0,
        imported_contacts=processed, skipped_contacts=0, failed_contacts=0, attempts=1,
        max_attempts=5, error_message=None, cancel_requested=False, started_at=started,
        completed_at=None, updated_at=started, trigger="user",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(-1, "0 s"), (0.4, "0 s"), (59, "59 s"), (60, "1 min"), (3_599, "59 min"), (3_600, "1 h"),
     (3_900, "1 h 5 min"), (86_400, "1 d"), (2 * 86_400 + 3 * 3_600 + 59, "2 d 3 h")],
)  # fmt: skip
def test_durations_use_at_most_two_units(seconds: float, text: str) -> None:
    assert describe_duration(seconds) == text


def test_a_queued_job_says_how_long_it_has_waited() -> None:
    pace = job_pace(job("fetching", age=150), NOW)
    assert pace.waiting == "Waiting for a worker · 2 min so far"
    assert (pace.rate, pace.eta) == ("", "")


def test_a_running_job_has_a_rate_and_the_time_left() -> None:
    # 600 contacts in 60 s: 10/s; 3,000 left: 300 s.
    pace = job_pace(job("processing", processed=600, total=3_600, age=60), NOW)
    assert (pace.waiting, pace.rate, pace.eta) == ("", "10 contacts/s", "about 5 min left")


@pytest.mark.parametrize(
    ("processed", "total", "age", "rate", "eta"),
    [
        (1_234_567, 2_469_134, 100, "12,346 contacts/s", "about 1 min left"),
        (50, 100, 20, "2.5 contacts/s", "less than a minute left"),
        (500, 0, 10, "50 contacts/s", ""),  # no total (Microsoft): no estimate of the time left
        (100, 100, 10, "10 contacts/s", ""),  # at the total already
        (0, 100, 10, "", ""),  # nothing done yet: nothing to estimate from
        (10, 100, 0.5, "", ""),  # too soon for a rate
    ],
)
def test_say_nothing_that_cannot_be_estimated(
    processed: int, total: int, age: float, rate: str, eta: str
) -> None:
    pace = job_pace(job("processing", processed=processed, total=total, age=age), NOW)
    assert (pace.rate, pace.eta) == (rate, eta)


@pytest.mark.parametrize("status", ["completed", "failed", "cancelled"])
def test_a_finished_job_has_no_pace(status: str) -> None:
    pace = job_pace(job(status, processed=10, total=10, age=60), NOW)
    assert (pace.waiting, pace.rate, pace.eta) == ("", "", "")


class _Page(HTMLParser):
    """Text and attributes of the elements with an id (their direct text)."""

    def __init__(self) -> None:
        super().__init__()
        self.attrs: dict[str, dict[str, str | None]] = {}
        self.texts: dict[str, str] = {}
        self._current: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._current = dict(attrs).get("id")
        if self._current:
            self.attrs[self._current], self.texts[self._current] = dict(attrs), ""

    def handle_endtag(self, tag: str) -> None:
        self._current = None

    def handle_data(self, data: str) -> None:
        if self._current:
            self.texts[self._current] += data


def render(view_job: JobOut, account_email: str | None = None) -> _Page:
    page = _Page()
    page.feed(status_page(status_view(view_job, NOW, account_email), "/feed"))
    return page


def test_the_page_shows_the_account_email_when_known() -> None:
    page = render(job("processing", processed=1, total=2, age=5), "ana+work@example.com")
    assert page.texts["account"] == "ana+work@example.com"
    assert "hidden" not in page.attrs["account-line"]
    escaped = status_page(status_view(job("fetching"), NOW, "<b>@x"), "/feed")
    assert "&lt;b&gt;@x" in escaped
    assert "<b>@x" not in escaped


def test_without_an_account_email_the_line_is_hidden() -> None:
    page = render(job("processing", processed=1, total=2, age=5))
    assert "hidden" in page.attrs["account-line"]


def test_a_queued_page_says_waiting_instead_of_zero_of_zero() -> None:
    page = render(job("fetching", age=75))
    assert page.texts["waiting"] == "Waiting for a worker · 1 min so far"
    assert "hidden" not in page.attrs["waiting"]
    assert "hidden" in page.attrs["counts-line"]
    assert "hidden" in page.attrs["pace"]


def test_a_running_page_shows_rate_and_time_left() -> None:
    page = render(job("processing", processed=600, total=3_600, age=60))
    assert (page.texts["rate"], page.texts["eta"]) == ("10 contacts/s", "about 5 min left")
    assert "hidden" not in page.attrs["pace"]
    assert "hidden" in page.attrs["waiting"]
    assert "hidden" not in page.attrs["counts-line"]


def test_the_feed_carries_the_same_texts_as_the_page() -> None:
    view = status_view(job("processing", processed=600, total=3_600, age=60), NOW, "a@b.c")
    feed = progress_out(view).model_dump(mode="json")
    assert feed["rate"] == view.pace.rate == "10 contacts/s"
    assert feed["eta"] == view.pace.eta
    assert feed["waiting"] == ""
    assert feed["account_email"] == "a@b.c"
    assert feed["processed_contacts"] == 600
