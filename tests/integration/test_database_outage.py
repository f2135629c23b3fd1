"""Runners and the API when the database is away or refuses us: real refused connections (a
port nobody listens on) and a real missing table; nothing is mocked.

Restarting a real Postgres mid-import is in tests/acceptance/test_postgres_restart.py.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import text

from contact_import.errors import DatabaseMisconfigured
from contact_import.runner.worker import Worker
from contact_import.runtime import Runtime
from contact_import.settings import Settings
from contact_import.web.app import create_app
from tests.integration.test_api import CRON_SECRET, JWT_SECRET, TestClient, as_user

sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def _refused_url() -> str:
    """A Postgres URL on a loopback port where nothing listens: every connect is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"postgresql://postgres@127.0.0.1:{port}/gone"


@pytest.fixture
def down_settings(settings_for: Callable[..., Settings]) -> Settings:
    return settings_for(database_url=_refused_url(), cron_secret=CRON_SECRET, jwt_secret=JWT_SECRET)


def _wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@contextmanager
def running(worker: Worker) -> Iterator[threading.Thread]:
    thread = threading.Thread(target=worker.run, name="worker-under-test")
    thread.start()
    try:
        yield thread
    finally:
        worker.request_stop()
        thread.join(timeout=30)


def _messages(caplog: pytest.LogCaptureFixture, text_: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage().startswith(text_)]


@sqlite_only
def test_a_worker_waits_out_a_database_it_cannot_reach_and_says_so_once(
    down_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    with Runtime.build(down_settings) as rt:
        assert rt.listen_url is not None
        worker = Worker(
            rt.jobs,
            rt.importer,
            metrics=rt.metrics,
            concurrency=2,
            poll_seconds=0.05,
            listen_url=rt.listen_url,
        )
        with running(worker) as thread:
            _wait_until(lambda: worker.outage.backoff.failures >= 5, 20, "five failed tries")
            assert thread.is_alive()
        assert not thread.is_alive()  # stopped when asked, without raising
    assert worker.failure is None
    gone = _messages(caplog, "database unavailable; retrying until it is back")
    assert len(gone) == 1, [r.getMessage() for r in caplog.records]
    assert gone[0].levelno == logging.WARNING
    assert "Connection refused" in gone[0].error  # type: ignore[attr-defined]
    assert len(_messages(caplog, "LISTEN connection failed; polling until it is back")) == 1
    assert not _messages(caplog, "database is back")
    assert not _messages(caplog, "worker cannot go on")


def test_a_worker_stops_on_its_own_when_the_schema_is_gone(runtime: Runtime) -> None:
    with runtime.engine.begin() as conn:
        conn.execute(text("ALTER TABLE contact_import_jobs RENAME TO contact_import_jobs_moved"))
    worker = Worker(
        runtime.jobs, runtime.importer, metrics=runtime.metrics, concurrency=1, poll_seconds=0.05
    )
    with running(worker) as thread:
        thread.join(timeout=20)
        assert not thread.is_alive(), "the worker kept going without its table"
    assert isinstance(worker.failure, DatabaseMisconfigured)
    assert "contact_import_jobs" in str(worker.failure)


@sqlite_only
def test_during_an_outage_the_api_answers_503_json_and_nothing_crashes(
    down_settings: Settings,
) -> None:
    with (
        Runtime.build(down_settings) as rt,
        TestClient(create_app(down_settings, runtime=rt)) as client,
    ):
        health = client.get("/healthz")
        assert health.status_code == 503
        assert health.json() == {
            "status": "unavailable",
            "database": "unreachable",
            "worker": "off",
        }
        for response in (
            client.post("/api/cron/process-imports", headers={"x-cron-secret": CRON_SECRET}),
            client.get("/api/cron/process-imports", params={"key": CRON_SECRET}),
            client.get("/api/v1/contacts", headers=as_user("ann")),
            client.get("/api/v1/contacts/import/jobs", headers=as_user("ann")),
        ):
            assert response.status_code == 503, response.text
            assert response.json() == {"error": "the database is unavailable; try again shortly"}
            assert response.headers["retry-after"] == "5"
        # No secret still means no tick, outage or not.
        assert client.post("/api/cron/process-imports").status_code == 401


def test_healthz_reports_an_in_process_worker_that_stopped_on_its_own(
    runtime: Runtime, settings_for: Callable[..., Settings]
) -> None:
    settings = settings_for(cron_secret=CRON_SECRET, jwt_secret=JWT_SECRET)
    reasons: list[str] = []
    app = create_app(settings, runtime=runtime, run_worker=True, on_worker_stopped=reasons.append)
    with TestClient(app) as client:
        healthy = client.get("/healthz")
        assert healthy.status_code == 200
        assert healthy.json() == {"status": "ok", "database": "ok", "worker": "running"}
        with runtime.engine.begin() as conn:  # a real failure the worker cannot go on after
            conn.execute(text("ALTER TABLE contact_import_jobs RENAME TO contact_import_jobs_x"))
        _wait_until(lambda: bool(reasons), 20, "the worker to stop")
        health = client.get("/healthz")
        assert health.status_code == 503
        body = health.json()
        assert body["status"] == "unavailable"
        assert body["database"] == "ok"
        assert body["worker"].startswith("stopped: the database schema is missing"), body
        assert body["worker"].endswith("run `contact-import db upgrade`"), body
        assert "contact_import_jobs" in body["worker"]
    assert len(reasons) == 1
