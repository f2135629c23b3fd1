"""The API mounted in a host FastAPI app under /contacts-import, with the host's own sign-in.

The host decides who the user is (its session header, not a JWT), runs the API's startup
inside its own lifespan (which starts the in-process worker), and a whole import goes
through it: start → the sandbox's consent → callback → the worker → status and status page,
every link and cookie under the prefix.
"""

from __future__ import annotations

import re
import time
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Annotated, Any
from urllib.parse import parse_qs, quote, urlsplit
from uuid import UUID

import httpx
import pytest
from fastapi import FastAPI, Header, HTTPException
from starlette.exceptions import StarletteDeprecationWarning

from contact_import.runtime import Runtime
from contact_import.settings import Settings
from contact_import.web import create_app, lifespan_of
from tests.helpers import assert_consistent

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

PREFIX = "/contacts-import"
API = f"{PREFIX}/api/v1/contacts/import"
SESSIONS = {"session-of-alice": "alice", "session-of-bob": "bob"}
ALICE, BOB = {"X-Session": "session-of-alice"}, {"X-Session": "session-of-bob"}


def signed_in(x_session: Annotated[str | None, Header()] = None) -> str:
    """The host's own sign-in: a session header it issued (no JWT anywhere)."""
    user = SESSIONS.get(x_session or "")
    if user is None:
        raise HTTPException(status_code=401, detail="sign in to the host app first")
    return user


def host_app(settings: Settings) -> tuple[FastAPI, FastAPI]:
    """(the host app, the contact-import app mounted in it)."""
    contacts_app = create_app(settings, run_worker=True, current_user=signed_in)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        async with lifespan_of(contacts_app):  # builds its runtime, starts its worker
            yield

    host = FastAPI(lifespan=lifespan)

    @host.get("/")
    def host_home() -> dict[str, str]:
        return {"app": "the host"}

    host.mount(PREFIX, contacts_app)
    return host, contacts_app


@pytest.fixture
def mounted(
    settings_for: Callable[..., Settings],
) -> Iterator[tuple[TestClient, FastAPI]]:
    settings = settings_for(
        public_base_url=f"http://testserver{PREFIX}",
        jwt_secret="status-link-secret-of-the-mount-test-0123456789",
    )
    host, contacts_app = host_app(settings)
    with TestClient(host, follow_redirects=False) as client:
        yield client, contacts_app


def _consent(client: TestClient) -> str:
    """Start as alice and let the sandbox approve: the callback it sends the browser to."""
    started = client.post(f"{API}/google/start", headers=ALICE)
    assert started.status_code == 200, started.text
    auth_url = started.json()["auth_url"]
    redirect_uri = parse_qs(urlsplit(auth_url).query)["redirect_uri"][0]
    assert redirect_uri == f"http://testserver{API}/google/callback"
    assert f"Path={API}/google/callback" in started.headers["set-cookie"]
    approved = httpx.get(f"{auth_url}&login_hint={quote('contacts:180,seed:5')}")
    assert approved.status_code == 302, approved.text
    location = urlsplit(approved.headers["location"])
    assert location.path == f"{API}/google/callback"
    return f"{location.path}?{location.query}"


def _wait_for_final(client: TestClient, job_id: UUID, timeout: float = 60) -> dict[str, Any]:
    """Poll the status route, as the host's user, until the in-process worker is done."""
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(f"{API}/status/{job_id}", headers=ALICE)
        assert response.status_code == 200, response.text
        job: dict[str, Any] = response.json()
        if job["status"] in ("completed", "failed", "cancelled"):
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.05)


def test_a_whole_import_through_the_mounted_api(mounted: tuple[TestClient, FastAPI]) -> None:
    client, contacts_app = mounted
    assert client.get("/").json() == {"app": "the host"}  # the host's own routes still answer

    callback = client.get(_consent(client))
    assert callback.status_code == 303, callback.text
    match = re.fullmatch(
        rf"{PREFIX}/imports/([0-9a-f-]{{36}})\?token=([\w.-]+)", callback.headers["location"]
    )
    assert match, callback.headers["location"]
    job_id = UUID(match.group(1))

    job = _wait_for_final(client, job_id)
    assert job["status"] == "completed", job
    rt: Runtime = contacts_app.state.runtime_holder.get()
    assert_consistent(rt.engine, rt.jobs.get(job_id), 180)
    contacts = client.get(f"{PREFIX}/api/v1/contacts", params={"limit": 500}, headers=ALICE)
    assert len(contacts.json()["contacts"]) == job["created_contacts"] > 0

    page = client.get(callback.headers["location"])
    assert page.status_code == 200, page.text
    links = re.findall(r'(?:href|src|data-progress-url)="([^"]+)"', page.text)
    assert len(links) == 4, links  # icon, stylesheet, script, the progress feed
    for link in links:
        assert link.startswith(f"{PREFIX}/"), link
        assert client.get(link.replace("&amp;", "&")).status_code == 200, link


def test_the_host_decides_who_is_signed_in(mounted: tuple[TestClient, FastAPI]) -> None:
    client, _ = mounted
    callback = client.get(_consent(client))
    job_id = UUID(callback.headers["location"].split("/imports/")[1].split("?")[0])
    assert client.get(f"{API}/status/{job_id}", headers=ALICE).status_code == 200
    assert client.get(f"{API}/status/{job_id}", headers=BOB).status_code == 404  # not bob's
    for headers in ({}, {"X-Session": "forged"}, {"Authorization": "Bearer a.jwt.here"}):
        refused = client.get(f"{API}/jobs", headers=headers)
        assert refused.status_code == 401, refused.text
        assert refused.json() == {"error": "sign in to the host app first"}
