"""kill -9 a real `contact-import worker` mid-import; another worker finishes it exactly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from contact_import.domain.job import JobStatus
from contact_import.runtime import Runtime
from contact_import.sandbox.accounts import Faults
from contact_import.sandbox.server import RunningSandbox
from contact_import.settings import Settings
from tests.helpers import Counts, SettingsFor, assert_consistent, drain, queue_import

pytestmark = pytest.mark.slow  # real worker processes over a 20,000-contact book
BOOK = 20_000
CLI = [sys.executable, "-m", "contact_import"]


def _wait_for(predicate: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_kill_9_mid_import_then_a_new_worker_completes_it_exactly(
    settings_for: SettingsFor, sandbox: RunningSandbox, subprocess_env: dict[str, str]
) -> None:
    settings: Settings = settings_for(page_size=500, lease_seconds=2)
    env = subprocess_env | {"PAGE_SIZE": "500", "LEASE_SECONDS": "2"}
    with Runtime.build(settings) as rt:
        reference = queue_import(rt, sandbox, "reference", size=BOOK, seed=5)
        drain(rt)
        job = queue_import(rt, sandbox, "victim", size=BOOK, seed=5, faults=Faults(latency_ms=30))
        first = subprocess.Popen([*CLI, "worker", "--concurrency", "1"], env=env)
        try:
            _wait_for(lambda: rt.jobs.get(job.id).pages_done >= 5, 90, "five pages")
        finally:
            os.kill(first.pid, signal.SIGKILL)
            first.wait(timeout=30)
        killed = rt.jobs.get(job.id)
        assert killed.status is JobStatus.PROCESSING
        assert killed.locked_by is not None  # the dead worker's lease is still on it
        assert 5 <= killed.pages_done < BOOK // 500
        expires = killed.lease_expires_at
        assert expires is not None
        _wait_for(lambda: datetime.now(UTC) > expires, 10, "lease expiry")

        second = subprocess.run([*CLI, "worker", "--once"], env=env, timeout=180, check=False)
        assert second.returncode == 0
        done = rt.jobs.get(job.id)
        assert done.attempts == 2  # the killed attempt counted
        assert Counts.of(done) == Counts.of(rt.jobs.get(reference.id))
        state = assert_consistent(rt.engine, done, BOOK)
        assert state.contacts == done.created_contacts  # no duplicate contacts


def test_sigterm_finishes_the_page_and_releases_the_job(
    settings_for: SettingsFor, sandbox: RunningSandbox, subprocess_env: dict[str, str]
) -> None:
    settings: Settings = settings_for(page_size=200)
    env = subprocess_env | {"PAGE_SIZE": "200"}
    with Runtime.build(settings) as rt:
        job = queue_import(rt, sandbox, "tess", size=6000, faults=Faults(latency_ms=50))
        worker = subprocess.Popen([*CLI, "worker", "--concurrency", "1"], env=env)
        _wait_for(lambda: rt.jobs.get(job.id).pages_done >= 2, 60, "two pages")
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
        released = rt.jobs.get(job.id)
        assert released.status is JobStatus.PROCESSING
        assert released.locked_by is None  # released at once, not left to expire
        assert released.attempts == 0  # a clean stop gives the attempt back
        assert released.processed_contacts == released.pages_done * 200
        drain(rt)
        assert_consistent(rt.engine, rt.jobs.get(job.id), 6000)
