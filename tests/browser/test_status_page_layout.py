"""The status page in headless Chromium at 320 to 1400 px with seven-digit counts: no number
wraps or overflows its box; a queued job says how long it has waited; a running one, updated
live by the page's script, shows its rate and the time left."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from playwright.sync_api import Browser, Page
from sqlalchemy import update

from contact_import.runtime import Runtime
from contact_import.settings import Settings
from contact_import.store.schema import jobs
from contact_import.web.app import create_app
from contact_import.web.routes.imports import status_page_url
from tests.helpers import live_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]

WIDTHS = (320, 360, 900, 1400)
# Half done after 1,000 s: 3,469 contacts a second, about 16 min left.
COUNTS = {
    "created_contacts": 1_234_567,
    "updated_contacts": 888_888,
    "skipped_contacts": 345_679,
    "failed_contacts": 1_000_000,
}
PROCESSED = sum(COUNTS.values())
TOTAL = 2 * PROCESSED

# For each number on the page: does it fit its element, and is it on one line?
MEASURE = """() => {
  const lines = (element) => {
    const range = document.createRange();
    range.selectNodeContents(element);
    return Array.from(range.getClientRects()).filter((r) => r.width > 0).length;
  };
  const boxes = Array.from(document.querySelectorAll(".count")).map((box) => {
    const number = box.querySelector("dd");
    return {
      id: number.id, text: number.textContent, lines: lines(number),
      scroll: number.scrollWidth, client: number.clientWidth,
      inside: number.getBoundingClientRect().right <= box.getBoundingClientRect().right + 0.5,
    };
  });
  const inline = ["processed", "total", "percent", "rate", "eta", "waiting"].map((id) => {
    const element = document.getElementById(id);
    return { id, text: element.textContent, lines: element.offsetParent ? lines(element) : 0 };
  });
  const page = { scroll: document.documentElement.scrollWidth, width: window.innerWidth };
  return { boxes, inline, page };
}"""


@dataclass(frozen=True)
class Served:
    base_url: str
    runtime: Runtime


@pytest.fixture
def served(sqlite_database_url: str) -> Iterator[Served]:
    """The app on loopback with no worker: the test moves the job through its states."""
    settings = Settings(contact_import_env="development", database_url=sqlite_database_url)
    with Runtime.build(settings) as rt, live_server(create_app(settings, runtime=rt)) as base:
        yield Served(base, rt)


def _set_job(rt: Runtime, job_id: UUID, **values: Any) -> None:
    with rt.engine.begin() as conn:
        conn.execute(update(jobs).where(jobs.c.id == job_id).values(**values))


def _open(browser: Browser, served: Served, job_id: UUID) -> tuple[Page, list[str]]:
    page = browser.new_page(viewport={"width": WIDTHS[0], "height": 800})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.goto(served.base_url + status_page_url(served.runtime, job_id))
    return page, problems


def _assert_numbers_fit(page: Page, width: int) -> None:
    measured = page.evaluate(MEASURE)
    assert len(measured["boxes"]) == 4
    for box in measured["boxes"]:
        where = f"{box['id']} at {width} px: {box}"
        assert box["text"] == f"{COUNTS[box['id'] + '_contacts']:,}", where
        assert box["scroll"] <= box["client"], where
        assert box["lines"] == 1, where
        assert box["inside"], where
    for item in measured["inline"]:
        assert item["lines"] <= 1, f"{item['id']} wraps at {width} px: {item}"
    assert measured["page"]["scroll"] <= measured["page"]["width"], f"scrolls sideways at {width}"


def test_counts_never_wrap_and_the_pace_is_shown(
    browser: Browser, served: Served, tmp_path: Path
) -> None:
    rt = served.runtime
    job, _ = rt.jobs.create("dev-user", "google")
    queued_at = datetime.now(UTC) - timedelta(seconds=125)
    _set_job(rt, job.id, started_at=queued_at, updated_at=queued_at, run_after=queued_at)
    page, problems = _open(browser, served, job.id)

    assert page.locator("#waiting").inner_text() == "Waiting for a worker · 2 min so far"
    assert not page.locator("#counts-line").is_visible()  # not "0 of 0 contacts"
    page.screenshot(path=tmp_path / "waiting.png", full_page=True)

    started = datetime.now(UTC) - timedelta(seconds=1_000)
    _set_job(
        rt, job.id, status="processing", started_at=started, total_contacts=TOTAL,
        processed_contacts=PROCESSED, imported_contacts=PROCESSED - 1_345_679, **COUNTS,
    )  # fmt: skip
    # The page's script picks the change up on its next poll (1 s).
    page.wait_for_function("() => document.getElementById('rate').textContent !== ''")
    assert page.locator("#waiting").is_hidden()
    assert page.locator("#counts-line").inner_text() == f"{PROCESSED:,} of {TOTAL:,} contacts"
    rate = page.locator("#rate").inner_text()
    # Started 1,000 s before, measured a moment later: between 1,000 and 1,010 s elapsed.
    number, unit = rate.split(" ", 1)
    assert unit == "contacts/s", rate
    assert PROCESSED / 1_010 - 1 <= int(number.replace(",", "")) <= PROCESSED / 1_000 + 1, rate
    assert page.locator("#eta").inner_text() == "about 16 min left"
    assert page.locator("#pace").is_visible()

    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=tmp_path / f"running-{width}.png", full_page=True)
        _assert_numbers_fit(page, width)
    assert problems == []  # no script errors, nothing blocked by the CSP
