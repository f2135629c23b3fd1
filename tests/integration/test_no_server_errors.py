"""Regression tests: inputs that used to answer 500 now get a clean 4xx (or the right answer).

Where the database was what failed (Postgres refusing NUL, an index row too big, a naive
timestamp, the one-active-job index), the test runs on both backends.
"""

from __future__ import annotations

import base64
import json
import time
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit
from uuid import UUID, uuid4

import httpx
import pytest
from sqlalchemy import func, insert, select, text
from starlette.exceptions import StarletteDeprecationWarning

from contact_import.domain.job import JobStatus
from contact_import.runtime import Runtime
from contact_import.sandbox.server import RunningSandbox
from contact_import.store.db import is_postgres
from contact_import.store.schema import jobs, oauth_states
from contact_import.web.app import create_app
from contact_import.web.routes.imports import status_page_url
from contact_import.web.signing import verify_job_link
from tests.helpers import SettingsFor, queue_import
from tests.integration.test_api import JWT_SECRET, assert_error, make_jwt

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

API = "/api/v1/contacts/import"
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def rt(settings_for: SettingsFor) -> Iterator[Runtime]:
    with Runtime.build(settings_for(jwt_secret=JWT_SECRET)) as runtime:
        yield runtime


@pytest.fixture
def client(rt: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(rt.settings, runtime=rt), follow_redirects=False) as c:
        yield c


def bearer(sub: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_jwt(sub)}"}


def count(rt: Runtime, table: Any) -> int:
    with rt.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


# --- status-page tokens ----------------------------------------------------------------------


@sqlite_only
@pytest.mark.parametrize(
    "tamper",
    [
        lambda t: "²" + t[1:],  # str.isdigit says yes, int() says no
        lambda t: "²",
        lambda t: t.partition(".")[0] + ".é" + t.partition(".")[2][2:],  # non-ASCII MAC
        lambda t: t.partition(".")[0] + ".\u00ff",
        lambda t: "١٢٣." + t.partition(".")[2],  # Arabic-Indic digits: int() takes them
    ],
    ids=["superscript-expiry", "superscript-only", "accented-mac", "latin1-mac", "arabic-digits"],
)
def test_a_non_ascii_status_token_is_the_usual_404(
    client: TestClient, rt: Runtime, sandbox: RunningSandbox, tamper: Any
) -> None:
    job = queue_import(rt, sandbox, "tina", size=5)
    good = status_page_url(rt, job.id).partition("?token=")[2]
    assert client.get(f"/imports/{job.id}", params={"token": good}).status_code == 200
    bad = tamper(good)
    for page in (f"/imports/{job.id}", f"/imports/{job.id}/progress"):
        assert_error(client.get(page, params={"token": bad}), 404)
    # the raw percent-encoding of the report, as a browser would send it
    assert_error(client.get(f"/imports/{job.id}?token=%C2%B2.x"), 404)
    assert not verify_job_link(JWT_SECRET, job.id, bad)


# --- user ids a database cannot store --------------------------------------------------------

BAD_SUBS = ["al\x00ice", "tab\there", "del\x7f", "c1\x85", "lone\ud800", "x" * 256, "é" * 3000]


@pytest.mark.parametrize(
    "sub", BAD_SUBS, ids=["nul", "tab", "del", "c1", "surrogate", "256", "3000"]
)
def test_a_sub_with_control_characters_or_too_long_is_401(
    client: TestClient, rt: Runtime, sub: str
) -> None:
    headers = bearer(sub)
    calls = [
        client.post(f"{API}/google/start", headers=headers),
        client.post(f"{API}/google/callback", json={"code": "c", "state": "s"}, headers=headers),
        client.get(f"{API}/jobs", headers=headers),
        client.get(f"{API}/status/{uuid4()}", headers=headers),
        client.post(f"{API}/jobs/{uuid4()}/retry", headers=headers),
        client.get("/api/v1/contacts", headers=headers),
    ]
    for response in calls:
        assert "255 characters" in assert_error(response, 401)
    assert count(rt, oauth_states) == 0


def test_a_sub_of_255_characters_completes_the_whole_flow(
    client: TestClient, rt: Runtime, sandbox: RunningSandbox
) -> None:
    sub = "ü" * 255  # 510 bytes: within every index's row limit
    started = client.post(f"{API}/google/start", headers=bearer(sub))
    assert started.status_code == 200, started.text
    hint = quote(sandbox.state.new_account(5, seed=9).id)
    approved = httpx.get(f"{started.json()['auth_url']}&login_hint={hint}")
    location = urlsplit(approved.headers["location"])
    landed = client.get(f"{location.path}?{location.query}")
    assert landed.status_code == 303, landed.text
    (job,) = rt.jobs.list_jobs(user_id=sub)
    assert job.status is JobStatus.COMPLETED  # imported by the callback itself, for that user


# --- retry racing a new start ----------------------------------------------------------------


def _uncommitted_start(conn: Any, user: str, provider: str) -> UUID:
    """What a concurrent start writes, before it commits: a new active job."""
    job_id, now = uuid4(), datetime.now(UTC)
    values = {"id": job_id, "user_id": user, "provider": provider, "status": "fetching"}
    times = {"run_after": now, "started_at": now, "updated_at": now}
    conn.execute(insert(jobs).values(values | times | {"max_attempts": 5}))
    return job_id


def _wait_until_blocked(rt: Runtime, pid: int | None) -> None:
    """Postgres: until a backend other than ``pid`` waits for a lock (the racing retry)."""
    if not is_postgres(rt.engine):
        return  # SQLite: BEGIN IMMEDIATE makes the retry wait for the write lock
    waiting = text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND wait_event_type = 'Lock' AND pid <> :pid"
    )
    deadline = time.monotonic() + 30
    with rt.engine.connect() as probe:
        while not probe.execute(waiting, {"pid": pid}).scalar_one():
            assert time.monotonic() < deadline, "the retry never reached the unique index"
            probe.rollback()
            time.sleep(0.02)


def test_retry_racing_a_new_start_is_a_409_not_a_500(
    client: TestClient, rt: Runtime, sandbox: RunningSandbox
) -> None:
    """On Postgres the retry's NOT EXISTS cannot see the uncommitted start, so the partial
    unique index is what refuses it: that is the backstop this drives."""
    old = queue_import(rt, sandbox, "rita", size=5)
    rt.jobs.cancel(old.id)
    with rt.engine.connect() as conn, ThreadPoolExecutor(1) as pool:
        conn.begin()
        racing = _uncommitted_start(conn, "rita", "google")
        pid = conn.execute(text("SELECT pg_backend_pid()")).scalar() if is_postgres(conn) else None
        retried = pool.submit(client.post, f"{API}/jobs/{old.id}/retry", headers=bearer("rita"))
        _wait_until_blocked(rt, pid)
        conn.commit()
        response = retried.result(timeout=60)
    message = assert_error(response, 409)
    assert message == f"another google import is already running: job {racing}"
    active = rt.jobs.list_jobs(user_id="rita", statuses=["fetching", "processing"])
    assert [j.id for j in active] == [racing]
    assert rt.jobs.get(old.id).status is JobStatus.CANCELLED


def test_retry_is_still_refused_after_the_race_and_works_once_it_is_over(
    client: TestClient, rt: Runtime, sandbox: RunningSandbox
) -> None:
    old = queue_import(rt, sandbox, "rosa", size=5)
    rt.jobs.cancel(old.id)
    newer = queue_import(rt, sandbox, "rosa", size=5, seed=2)
    refused = client.post(f"{API}/jobs/{old.id}/retry", headers=bearer("rosa"))
    assert assert_error(refused, 409).endswith(f"already running: job {newer.id}")
    rt.jobs.cancel(newer.id)
    retried = client.post(f"{API}/jobs/{old.id}/retry", headers=bearer("rosa"))
    assert retried.status_code == 200, retried.text
    assert retried.json()["status"] == "fetching"
    assert_error(client.post(f"{API}/jobs/{old.id}/retry", headers=bearer("someone")), 404)


# --- the contacts cursor ---------------------------------------------------------------------


def _cursor(when: object, ident: object) -> str:
    raw = json.dumps([when, ident]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "when",
    ["2024-01-01T00:00:00", "2024-01-01", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"],
    ids=["naive", "date-only", "underflow", "overflow"],
)
def test_a_naive_or_unrepresentable_cursor_is_400(client: TestClient, when: str) -> None:
    response = client.get(
        "/api/v1/contacts", params={"cursor": _cursor(when, str(uuid4()))}, headers=bearer("a")
    )
    assert "cursor" in assert_error(response, 400)


def test_an_aware_cursor_still_pages(client: TestClient) -> None:
    cursor = _cursor("2024-01-01T00:00:00+02:00", str(uuid4()))
    response = client.get("/api/v1/contacts", params={"cursor": cursor}, headers=bearer("a"))
    assert response.status_code == 200, response.text
    assert response.json() == {"contacts": [], "next_cursor": None}


# --- odd inputs on the OAuth routes and the dev form -----------------------------------------


@sqlite_only
def test_odd_oauth_inputs_are_4xx(client: TestClient, rt: Runtime) -> None:
    alice = bearer("alice")
    huge = "a" * 20_000
    gets = [
        (f"{API}/{huge}/callback", {"code": "c", "state": "s"}, 404),
        (f"{API}/google/callback", {"code": "\x00", "state": "\x00"}, 400),
        (f"{API}/google/callback", {"code": "c" * 30_000, "state": "s" * 30_000}, 400),
        (f"{API}/google/callback", {"code": "x", "state": "\u00e9t\u00e9"}, 400),
        (f"{API}/google/callback", {"error": "\x00<b>" * 50}, 400),
    ]
    for path, params, status in gets:
        message = assert_error(client.get(path, params=params), status)
        assert len(message) < 200
        assert "\x00" not in message
    assert_error(client.post(f"{API}/{huge}/start", headers=alice), 404)
    bodies: list[tuple[bytes, int]] = [
        (b'{"code": "\\ud800", "state": "\\ud800"}', 422),
        (b'{"code": "x", "state": "\\u0000"}', 400),
        (b'{"code": "x", "state": "' + "é".encode() * 10 + b'"}', 400),
        (b'{"code": 1, "state": []}', 422),
        (b"[]", 422),
        (b"not json", 422),
        (b'{"code": "' + b"c" * 5000 + b'", "state": "s"}', 422),
    ]
    for body, status in bodies:
        headers = alice | {"Content-Type": "application/json"}
        assert_error(client.post(f"{API}/google/callback", content=body, headers=headers), status)
    assert_error(client.post(f"{API}/google/callback", json={"code": "c", "state": "s"}), 401)
    assert count(rt, jobs) == 0


@sqlite_only
@pytest.mark.parametrize("contacts", ["²", "١٢", "1" * 400])
def test_the_dev_form_refuses_odd_numbers(client: TestClient, contacts: str) -> None:
    response = client.post("/dev/start/google", data={"contacts": contacts})
    assert "contacts must be" in assert_error(response, 400)
