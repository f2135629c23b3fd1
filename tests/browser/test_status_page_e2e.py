"""End to end in headless Chromium: `serve --sandbox` as a subprocess, the home page's Google
button, the sandbox's OAuth, and the status page following the import live to "completed"."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

import httpx
import pytest
from playwright.sync_api import Browser, Page

from contact_import.store.db import create_db_engine
from tests.helpers import free_port, stored_state, wait_healthy

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Big enough that, 200 contacts a page, the import takes several of the page's 1 s polls.
BOOK_SIZE = 30_000
FINAL = {"completed", "failed", "cancelled"}
SERVE_START_TIMEOUT = 60.0
IMPORT_TIMEOUT = 180.0

READ_PAGE = """() => {
  const text = (id) => document.getElementById(id).textContent.trim();
  const bar = document.getElementById("bar");
  return {
    status: text("status"), processed: text("processed"), total: text("total"),
    created: text("created"), updated: text("updated"), skipped: text("skipped"),
    failed: text("failed"), error: text("error"),
    bar: bar.hasAttribute("value") ? bar.value : null, bar_max: bar.max,
  };
}"""


@dataclass(frozen=True)
class Server:
    base_url: str
    database_url: str


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    port = free_port()
    database_url = f"sqlite:///{tmp_path / 'serve.db'}"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "CONTACT_IMPORT_ENV": "development",
        "DATABASE_URL": database_url,
        "PAGE_SIZE": "200",
        "WORKER_POLL_SECONDS": "0.2",
    }
    log = tmp_path / "serve.log"
    command = [sys.executable, "-m", "contact_import", "serve", "--sandbox", "--port", str(port)]
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_healthy(process, f"http://127.0.0.1:{port}", log, SERVE_START_TIMEOUT)
        yield Server(f"http://127.0.0.1:{port}", database_url)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _number(text: str) -> int:
    return int(text.replace(",", ""))


def _follow_until_final(page: Page, tmp_path: Path) -> tuple[dict[str, str], set[int], set[float]]:
    """Read the page every 100 ms until a final status: (last read, processed values seen below
    the total, bar positions seen below its max). Screenshots the page once mid-import."""
    processed_seen: set[int] = set()
    bar_seen: set[float] = set()
    deadline = time.monotonic() + IMPORT_TIMEOUT
    while time.monotonic() < deadline:
        state = page.evaluate(READ_PAGE)
        processed, total = _number(state["processed"]), _number(state["total"])
        if 0 < processed < total:
            if not processed_seen:
                page.screenshot(path=tmp_path / "status-running.png", full_page=True)
            processed_seen.add(processed)
        if state["bar"] is not None and 0 < state["bar"] < state["bar_max"]:
            bar_seen.add(state["bar"])
        if state["status"] in FINAL:
            return state, processed_seen, bar_seen
        time.sleep(0.1)
    pytest.fail(f"the page did not reach a final status in {IMPORT_TIMEOUT:.0f} s: {state}")


def test_status_page_follows_a_sandbox_import_live(
    server: Server, browser: Browser, tmp_path: Path
) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on(
        "response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None
    )

    page.goto(f"{server.base_url}/")
    page.fill("#contacts", str(BOOK_SIZE))
    page.click("#start-google")
    page.wait_for_url(re.compile(r"/imports/[0-9a-f-]{36}\?token="), timeout=30_000)
    job_id = UUID(page.url.split("/imports/")[1].split("?")[0])

    # Anything that reloads or leaves the page from here on would lose this marker.
    page.evaluate("() => { window.__statusPageMarker = 'same-document'; }")
    navigations: list[str] = []
    page.on("framenavigated", lambda f: navigations.append(f.url) if f == page.main_frame else None)

    final, processed_seen, bar_seen = _follow_until_final(page, tmp_path)
    page.screenshot(path=tmp_path / "status.png", full_page=True)

    assert final["status"] == "completed", final["error"]
    assert len(processed_seen) >= 2, f"the count never moved: {processed_seen}"
    assert len(bar_seen) >= 2, f"the bar never moved: {bar_seen}"
    assert page.evaluate("() => window.__statusPageMarker") == "same-document"
    assert navigations == []
    assert problems == []  # no script errors, nothing blocked by the CSP

    progress_url = page.url.replace(f"/imports/{job_id}?", f"/imports/{job_id}/progress?")
    job = httpx.get(progress_url).json()
    assert job["status"] == "completed"
    assert _number(final["total"]) == _number(final["processed"]) == BOOK_SIZE
    for name in ("processed", "total", "created", "updated", "skipped", "failed"):
        assert _number(final[name]) == job[f"{name}_contacts"], name
    assert job["processed_contacts"] == sum(
        job[f"{name}_contacts"] for name in ("created", "updated", "skipped", "failed")
    )
    engine = create_db_engine(server.database_url)
    try:
        stored = stored_state(engine, "dev-user", job_id)
    finally:
        engine.dispose()
    assert stored.contacts == job["created_contacts"]  # a fresh database: every contact is new
    assert stored.audit_actions.get("created", 0) == job["created_contacts"]
    assert stored.audit_actions.get("skipped", 0) == job["skipped_contacts"]
    context.close()
