"""Webhooks with real processes: `webhooks list|retry`, and a worker killed with -9 while it
delivers: another worker delivers the event, with the same webhook-id."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy import update

from contact_import.domain.webhooks import EventStatus
from contact_import.runtime import Runtime
from contact_import.sandbox.server import RunningSandbox
from contact_import.settings import Settings
from contact_import.store.schema import webhook_events
from tests.helpers import free_port, queue_import
from tests.webhook_receiver import Receiver, new_secret

CLI = [sys.executable, "-m", "contact_import"]
SECRET = new_secret()


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_webhooks_list_and_retry(
    settings_for: Callable[..., Settings], sandbox: RunningSandbox, subprocess_env: dict[str, str]
) -> None:
    url = f"http://127.0.0.1:{free_port()}/hooks"  # nobody listens
    env = subprocess_env | {"WEBHOOK_URL": url, "WEBHOOK_SECRET": SECRET, "COLUMNS": "200"}
    with Runtime.build(settings_for(webhook_url=url, webhook_secret=SECRET)) as rt:
        job = queue_import(rt, sandbox, "lu", size=5)
        rt.jobs.cancel(job.id)
        (event,) = rt.outbox.list_events()

        listed = run(["webhooks", "list", "--json"], env)
        assert listed.returncode == 0, listed.stderr
        (row,) = json.loads(listed.stdout)
        assert (row["id"], row["type"], row["job_id"]) == (
            event.id,
            "import.cancelled",
            str(job.id),
        )
        assert row["status"] == "pending"
        assert json.loads(run(["webhooks", "list", "--failed", "--json"], env).stdout) == []

        with rt.engine.begin() as conn:
            conn.execute(
                update(webhook_events)
                .where(webhook_events.c.id == event.id)
                .values(status="gave_up", attempts=11, last_error="HTTP 500")
            )
        piped = run(["webhooks", "list", "--failed"], env)
        narrow = env | {"COLUMNS": "80", "TTY_COMPATIBLE": "1", "NO_COLOR": "1"}  # a terminal
        at_80 = run(["webhooks", "list", "--failed"], narrow)
        for failed in (piped, at_80):
            assert failed.returncode == 0, failed.stderr
            assert event.id[:12] in failed.stdout
            assert "gave_up" in failed.stdout
        assert "HTTP 500" in piped.stdout  # never cut in a pipe
        shown = re.sub(r"\x1b\[[0-9;]*m", "", at_80.stdout)  # Rich's bold and underline
        assert all(len(line) <= 80 for line in shown.splitlines()), shown

        before = datetime.now(UTC)
        retried = run(["webhooks", "retry", event.id[:12]], env)  # a unique start of the id
        assert retried.returncode == 0, retried.stderr
        again = rt.outbox.get(event.id)
        assert again.status is EventStatus.PENDING
        assert before <= again.next_attempt_at <= datetime.now(UTC)

        unknown = run(["webhooks", "retry", "msg_nope"], env)
        assert unknown.returncode == 1
        assert unknown.stderr.strip().splitlines() == ["error: no webhook event msg_nope"]


def test_a_bad_webhook_secret_stops_the_cli_with_one_line(subprocess_env: dict[str, str]) -> None:
    env = subprocess_env | {"WEBHOOK_URL": "http://127.0.0.1:9/h", "WEBHOOK_SECRET": "whsec_x"}
    result = run(["webhooks", "list"], env)
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert "WEBHOOK_SECRET" in line
    assert "whsec_x" not in line


@pytest.mark.slow
def test_kill_9_while_delivering_then_another_worker_delivers_it(
    settings_for: Callable[..., Settings], sandbox: RunningSandbox, subprocess_env: dict[str, str]
) -> None:
    receiver = Receiver(free_port(), delay=60.0)  # the first delivery hangs
    env = subprocess_env | {
        "WEBHOOK_URL": receiver.url,
        "WEBHOOK_SECRET": SECRET,
        "WEBHOOK_TIMEOUT_SECONDS": "3",  # lease: 3 + 10 s
    }
    settings = settings_for(webhook_url=receiver.url, webhook_secret=SECRET)
    with receiver.running(), Runtime.build(settings) as rt:
        job = queue_import(rt, sandbox, "mo", size=30)
        first = subprocess.Popen([*CLI, "worker", "--concurrency", "1"], env=env)
        try:
            receiver.wait_arrivals(1, 60)
        finally:
            os.kill(first.pid, signal.SIGKILL)
            first.wait(timeout=30)
        (held,) = rt.outbox.list_events()
        assert held.status is EventStatus.PENDING
        assert held.locked_by is not None
        assert rt.jobs.get(job.id).status.value == "completed"

        receiver.delay = 0.0
        second = subprocess.Popen([*CLI, "worker", "--concurrency", "1"], env=env)
        try:
            (got,) = receiver.wait_for(1, 60)
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(timeout=30) == 0
        delivered = rt.outbox.get(held.id)
    assert delivered.status is EventStatus.DELIVERED
    assert got.headers["webhook-id"] == held.id
    body = got.verified(SECRET)
    assert body["type"] == "import.completed"
    assert body["data"]["id"] == str(job.id)
    assert body["data"]["processed_contacts"] == 30
