"""What operators see: `/metrics` after real imports, JSON log lines, and the Vercel entrypoint."""

from __future__ import annotations

import io
import json
import logging
import runpy
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update
from starlette.exceptions import StarletteDeprecationWarning

from contact_import.logs import JsonFormatter
from contact_import.runner.tick import run_tick
from contact_import.runtime import Runtime
from contact_import.sandbox.accounts import Faults
from contact_import.sandbox.server import RunningSandbox
from contact_import.settings import Settings
from contact_import.store.jobs import Job
from contact_import.store.schema import jobs
from contact_import.web.app import create_app
from tests.helpers import SettingsFor, drain, queue_import

with warnings.catch_warnings():
    # Starlette 1.x asks for httpx2 behind its TestClient; with httpx it works the same.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

CRON_SECRET = "cron-secret-for-the-metrics-tests-0123456789"
REPO = Path(__file__).resolve().parents[2]

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(client: TestClient) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


@pytest.fixture
def rt(settings_for: SettingsFor) -> Iterator[Runtime]:
    settings = settings_for(cron_secret=CRON_SECRET, page_size=100)
    with Runtime.build(settings) as runtime:
        yield runtime


@pytest.fixture
def client(rt: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(rt.settings, runtime=rt), follow_redirects=False) as test_client:
        yield test_client


def tick_until_idle(client: TestClient, max_ticks: int = 20) -> tuple[int, int]:
    """Call the cron route until a tick claims nothing: (ticks, jobs claimed in all)."""
    claimed = 0
    for ticks in range(1, max_ticks + 1):
        response = client.get(
            "/api/cron/process-imports", headers={"Authorization": f"Bearer {CRON_SECRET}"}
        )
        assert response.status_code == 200, response.text
        ids = response.json()["job_ids"]
        n = sum(len(ids[k]) for k in ("processed", "failed", "continuing", "cancelled"))
        if n == 0:
            return ticks, claimed
        claimed += n
    raise AssertionError(f"jobs still runnable after {max_ticks} ticks")


def backdate(rt: Runtime, job: Job, seconds: float) -> None:
    with rt.engine.begin() as conn:
        since = datetime.now(UTC) - timedelta(seconds=seconds)
        conn.execute(update(jobs).where(jobs.c.id == job.id).values(run_after=since))


def test_metrics_count_an_import_a_failure_and_the_waiting_queue(
    rt: Runtime, client: TestClient, sandbox: RunningSandbox
) -> None:
    ok = queue_import(rt, sandbox, "ada", size=250, seed=5)
    revoked = queue_import(rt, sandbox, "bob", size=40, faults=Faults(revoked=True))
    ticks, claimed = tick_until_idle(client)
    waiting = queue_import(rt, sandbox, "cyd", size=10)
    backdate(rt, waiting, 90)

    samples = scrape(client)
    done, failed = rt.jobs.get(ok.id), rt.jobs.get(revoked.id)
    assert (done.status.value, failed.status.value) == ("completed", "failed")
    assert value(samples, "contact_import_cron_ticks_total") == ticks
    assert value(samples, "contact_import_claims_total") == claimed >= 2
    assert value(samples, "contact_import_reclaims_total") == 0
    assert value(samples, "contact_import_completions_total") == 1
    assert value(samples, "contact_import_import_duration_seconds_count") == 1
    assert value(samples, "contact_import_failures_total", reason="revoked") == 1
    other_reasons = ("scope", "rate_limited", "unavailable", "malformed", "gave_up", "internal")
    assert all(
        value(samples, "contact_import_failures_total", reason=r) == 0 for r in other_reasons
    )
    expected = {
        "created": done.created_contacts,
        "updated": done.updated_contacts,
        "skipped": done.skipped_contacts,
        "failed": done.failed_contacts,
    }
    assert sum(expected.values()) == 250
    for action, count in expected.items():
        assert value(samples, "contact_import_contacts_processed_total", action=action) == count
    by_status = {
        s: value(samples, "contact_import_jobs", status=s)
        for s in ("fetching", "processing", "completed", "failed", "cancelled")
    }
    assert by_status == {
        "fetching": 1, "processing": 0, "completed": 1, "failed": 1, "cancelled": 0,
    }  # fmt: skip
    assert value(samples, "contact_import_queue_depth") == 1
    assert 90 <= value(samples, "contact_import_oldest_waiting_job_age_seconds") < 600


def test_an_empty_queue_reports_zero_depth_and_zero_wait(client: TestClient) -> None:
    samples = scrape(client)
    assert value(samples, "contact_import_queue_depth") == 0
    assert value(samples, "contact_import_oldest_waiting_job_age_seconds") == 0
    assert value(samples, "contact_import_jobs", status="fetching") == 0


def test_only_a_claim_over_an_expired_lease_counts_as_a_reclaim(
    rt: Runtime, client: TestClient, sandbox: RunningSandbox
) -> None:
    def claim(worker: str, limit: int) -> list[Job]:
        claimed = rt.jobs.claim(worker, limit)  # the store says what happened …
        rt.metrics.record_claim(claimed)  # … and a runner records it, as ticks and workers do
        return claimed.jobs

    job = queue_import(rt, sandbox, "dee", size=10)
    (first,) = claim("w1", 1)
    rt.jobs.release(first.lease, refund=True)  # a clean release: the next claim is no reclaim
    (second,) = claim("w2", 1)
    with rt.engine.begin() as conn:  # w2 dies: its lease runs out
        past = datetime.now(UTC) - timedelta(seconds=1)
        conn.execute(update(jobs).where(jobs.c.id == job.id).values(lease_expires_at=past))
    fresh = queue_import(rt, sandbox, "dan", size=10)
    both = claim("w3", 2)  # one statement: a reclaim and a first claim
    assert {j.id for j in both} == {job.id, fresh.id}
    assert second.id == job.id

    samples = scrape(client)
    assert value(samples, "contact_import_claims_total") == 4
    assert value(samples, "contact_import_reclaims_total") == 1


def test_a_workers_claims_and_a_ticks_reaped_jobs_are_counted(
    rt: Runtime, client: TestClient, sandbox: RunningSandbox
) -> None:
    queue_import(rt, sandbox, "gil", size=10)
    queue_import(rt, sandbox, "hal", size=10)
    drain(rt)  # a Worker claims and imports both
    dead = queue_import(rt, sandbox, "ida", size=10)
    with rt.engine.begin() as conn:
        conn.execute(update(jobs).where(jobs.c.id == dead.id).values(max_attempts=1))
    # A worker of another process (its own registry counts the claim) takes it and dies.
    (claimed,) = rt.jobs.claim("elsewhere", 1).jobs
    with rt.engine.begin() as conn:
        past = datetime.now(UTC) - timedelta(seconds=1)
        conn.execute(update(jobs).where(jobs.c.id == dead.id).values(lease_expires_at=past))
    summary = run_tick(rt.jobs, rt.importer, metrics=rt.metrics, budget_seconds=5, max_jobs=1)

    assert summary.claimed == 0  # no attempts left: the tick reaps it instead
    assert rt.jobs.get(claimed.id).status.value == "failed"
    samples = scrape(client)
    assert value(samples, "contact_import_claims_total") == 2
    assert value(samples, "contact_import_failures_total", reason="gave_up") == 1
    assert value(samples, "contact_import_completions_total") == 2


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """What the ``contact_import`` loggers write, formatted as LOG_FORMAT=json does."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("contact_import")
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield buffer
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


def test_json_logs_of_an_import_carry_the_job_id_and_no_token(
    rt: Runtime, sandbox: RunningSandbox, json_lines: io.StringIO
) -> None:
    ok = queue_import(rt, sandbox, "eve", size=250, seed=2)
    revoked = queue_import(rt, sandbox, "fay", size=20, faults=Faults(revoked=True))
    run_tick(rt.jobs, rt.importer, metrics=rt.metrics, budget_seconds=30, max_jobs=2)
    drain(rt)  # whatever the tick left

    entries: list[dict[str, Any]] = [
        json.loads(line) for line in json_lines.getvalue().splitlines()
    ]
    assert entries
    for entry in entries:
        assert {"ts", "level", "logger", "message"} <= entry.keys()
    of_ok = [e for e in entries if e.get("job_id") == str(ok.id)]
    messages = [e["message"] for e in of_ok]
    assert messages[0] == "job claimed"
    assert messages.count("page imported") == 3  # 250 contacts, pages of 100
    assert messages[-1] == "job completed"
    assert of_ok[-1]["contacts_created"] + of_ok[-1]["contacts_updated"] > 0
    (failure,) = [e for e in entries if e["message"].startswith("job failed")]
    assert failure["job_id"] == str(revoked.id)
    assert failure["reason"] == "revoked"
    assert failure["level"] == "WARNING"
    found = [e for e in entries if e["message"] == "found pending jobs"]
    assert found
    assert str(ok.id) in found[0]["job_ids"]

    text = json_lines.getvalue()
    for job in (ok, revoked):
        grant = rt.grants.get(job.grant_id)
        assert grant.access_token
        assert grant.access_token not in text


def test_the_vercel_entrypoint_serves_the_cron_route_on_its_exact_path(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONTACT_IMPORT_ENV", "development")
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("CRON_SECRET", CRON_SECRET)
    monkeypatch.delenv("LOG_FORMAT", raising=False)
    configured: list[tuple[str, str]] = []
    # The entrypoint configures the process's logging; here pytest keeps its own.
    monkeypatch.setattr(
        "contact_import.logs.configure_logging", lambda *args: configured.append(args)
    )
    app = runpy.run_path(str(REPO / "api" / "index.py"))["app"]
    assert configured == [("info", "text")]
    vercel = json.loads((REPO / "vercel.json").read_text())
    (cron,) = vercel["crons"]
    assert cron == {"path": "/api/cron/process-imports", "schedule": "* * * * *"}
    assert vercel["functions"]["api/index.py"]["maxDuration"] > settings.tick_budget_seconds

    with TestClient(app, follow_redirects=False) as client:
        # What Vercel sends: GET, its user agent, the secret as a bearer token.
        headers = {"User-Agent": "vercel-cron/1.0"}
        refused = client.get(cron["path"], headers=headers)
        ticked = client.get(
            cron["path"], headers=headers | {"Authorization": f"Bearer {CRON_SECRET}"}
        )
    assert refused.status_code == 401
    assert ticked.status_code == 200
    assert ticked.json()["message"] == "No pending jobs"
