"""Connected accounts over HTTP: listing them, disconnecting one (revoked at the sandbox, every
token gone from the database, the active job cancelled), and importing with the app's own
provider tokens. Real database (both backends), the sandbox over loopback."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from uuid import UUID

import pytest
from sqlalchemy import func, select

from contact_import.domain.job import JobStatus
from contact_import.runner.importer import ImportBudget
from contact_import.runtime import Runtime
from contact_import.sandbox.server import RunningSandbox
from contact_import.settings import Settings
from contact_import.store.schema import jobs, provider_grants
from tests.helpers import assert_consistent, drain, free_port, sandbox_tokens
from tests.integration.test_api import (
    API,
    CRON_SECRET,
    JWT_SECRET,
    as_user,
    assert_error,
    client_for,
    connect,
)

if TYPE_CHECKING:  # imported at run time by test_api, under its warning filter
    from fastapi.testclient import TestClient

PROVIDERS = ["google", "microsoft"]
_TOKEN_COLUMNS = ("access_token_enc", "refresh_token_enc", "sync_token_enc")


@pytest.fixture
def rt(settings_for) -> Iterator[Runtime]:  # type: ignore[no-untyped-def]
    # The callback only queues its job (no instant import): these tests disconnect under it.
    settings: Settings = settings_for(
        cron_secret=CRON_SECRET, jwt_secret=JWT_SECRET, callback_budget_seconds=0
    )
    with Runtime.build(settings) as runtime:
        yield runtime


@pytest.fixture
def client(rt: Runtime) -> Iterator[TestClient]:
    with client_for(rt) as c:
        yield c


def grant_row(rt: Runtime, user: str, provider: str) -> Any:
    with rt.engine.connect() as conn:
        return conn.execute(
            select(provider_grants).where(
                provider_grants.c.user_id == user, provider_grants.c.provider == provider
            )
        ).one()


def count_rows(rt: Runtime, table: Any) -> int:
    with rt.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def connections(client: TestClient, user: str) -> dict[str, dict[str, Any]]:
    response = client.get(f"{API}/connections", headers=as_user(user))
    assert response.status_code == 200, response.text
    return {c["provider"]: c for c in response.json()["connections"]}


# --- disconnecting ----------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_disconnect_revokes_forgets_every_token_and_cancels_the_job(
    client: TestClient, rt: Runtime, sandbox: RunningSandbox, provider: str
) -> None:
    job_id, _link = connect(client, "dora", provider, "contacts:120,seed:31")
    grant = rt.grants.get(rt.jobs.get(job_id).grant_id)
    assert grant.refresh_token
    assert grant.access_token
    account = sandbox.state.account(grant.access_token)
    assert account is not None
    listed = connections(client, "dora")[provider]
    assert listed["status"] == "active"
    assert listed["account_email"] == account.email
    assert listed["next_sync_at"] is None  # SYNC_INTERVAL_SECONDS is off

    response = client.delete(f"{API}/{provider}/connection", headers=as_user("dora"))

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["cancelled_job_id"] == str(job_id)
    assert rt.jobs.get(job_id).status is JobStatus.CANCELLED
    row = grant_row(rt, "dora", provider)
    assert row.status == "revoked"
    assert all(getattr(row, column) is None for column in _TOKEN_COLUMNS)
    if provider == "google":  # the sandbox saw it: the refresh token is dead there now
        assert body["revoked_at_provider"] is True
        assert account.revocations == 1
        assert _sandbox_refresh(rt, grant.refresh_token).json()["error"] == "invalid_grant"
    else:  # no per-token revocation for this flow: only forgotten here
        assert body["revoked_at_provider"] is False
        assert account.revocations == 0
    assert connections(client, "dora")[provider]["status"] == "revoked"
    assert_error(client.delete(f"{API}/{provider}/connection", headers=as_user("dora")), 404)


def _sandbox_refresh(rt: Runtime, refresh_token: str) -> Any:
    response = rt.http.post(
        rt.settings.google_token_url,
        data={
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": rt.settings.google_client_id,
            "client_secret": rt.settings.google_client_secret,
        },
    )
    assert response.status_code == 400, response.text
    return response


@pytest.mark.parametrize("provider", PROVIDERS)
def test_after_a_disconnect_importing_again_needs_a_new_consent(
    client: TestClient, rt: Runtime, provider: str
) -> None:
    job_id, _link = connect(client, "emil", provider, "contacts:40,seed:32")
    assert client.delete(f"{API}/{provider}/connection", headers=as_user("emil")).is_success

    retried = client.post(f"{API}/jobs/{job_id}/retry", headers=as_user("emil"))
    assert retried.status_code == 200, retried.text
    drain(rt)
    failed = rt.jobs.get(job_id)
    assert failed.status is JobStatus.FAILED
    assert "reconnect" in (failed.error_message or "")

    again, _link = connect(client, "emil", provider, "contacts:40,seed:32")
    drain(rt)
    assert_consistent(rt.engine, rt.jobs.get(again), 40)
    assert connections(client, "emil")[provider]["status"] == "active"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_running_import_ends_cancelled_when_its_account_is_disconnected(
    client: TestClient, rt: Runtime, provider: str
) -> None:
    job_id, _link = connect(client, "fritz", provider, "contacts:30,seed:33")
    claimed = rt.jobs.claim("test-worker", 1).jobs
    assert [job.id for job in claimed] == [job_id]

    response = client.delete(f"{API}/{provider}/connection", headers=as_user("fritz"))
    assert response.json()["cancelled_job_id"] == str(job_id)
    rt.importer.run(claimed[0], ImportBudget())  # the worker that held it carries on

    done = rt.jobs.get(job_id)
    assert done.status is JobStatus.CANCELLED, done.error_message
    assert all(getattr(grant_row(rt, "fritz", provider), c) is None for c in _TOKEN_COLUMNS)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_provider_that_fails_the_revocation_still_leaves_no_token_here(
    settings_for: Any, sandbox: RunningSandbox
) -> None:
    dead = f"http://127.0.0.1:{free_port()}/revoke"  # nobody listens there
    settings = settings_for(
        jwt_secret=JWT_SECRET, google_revoke_url=dead, callback_budget_seconds=0
    )
    with Runtime.build(settings) as rt, client_for(rt) as client:
        job_id, _link = connect(client, "gus", "google", "contacts:10,seed:34")
        response = client.delete(f"{API}/google/connection", headers=as_user("gus"))
        assert response.status_code == 200, response.text
        assert response.json()["revoked_at_provider"] is False
        assert rt.jobs.get(job_id).status is JobStatus.CANCELLED
        assert all(getattr(grant_row(rt, "gus", "google"), c) is None for c in _TOKEN_COLUMNS)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_disconnect_answers_404_json_for_nothing_connected_or_an_unknown_provider(
    client: TestClient,
) -> None:
    assert "no Google account" in assert_error(
        client.delete(f"{API}/google/connection", headers=as_user("hana")), 404
    )
    assert_error(client.delete(f"{API}/yahoo/connection", headers=as_user("hana")), 404)
    assert_error(client.delete(f"{API}/google/connection"), 401)
    assert_error(client.get(f"{API}/connections"), 401)
    assert connections(client, "hana") == {}


# --- bring your own tokens --------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_own_tokens_import_completes_with_exact_counts(
    client: TestClient, rt: Runtime, sandbox: RunningSandbox, provider: str
) -> None:
    tokens = sandbox_tokens(sandbox, provider, size=321, seed=35)
    body = {"access_token": tokens.access_token, "refresh_token": tokens.refresh_token}

    first = client.post(f"{API}/{provider}/jobs", json=body, headers=as_user("ines"))
    again = client.post(f"{API}/{provider}/jobs", json=body, headers=as_user("ines"))

    assert first.status_code == 201, first.text
    assert again.status_code == 200, again.text
    job = first.json()["job"]
    assert again.json()["job"]["id"] == job["id"]
    assert (job["status"], job["trigger"]) == ("fetching", "user")
    assert first.json()["status_url"].startswith(rt.settings.public_base_url)
    drain(rt)
    assert_consistent(rt.engine, rt.jobs.get(UUID(job["id"])), 321)
    row = grant_row(rt, "ines", provider)
    assert row.account_email == tokens.account.email
    assert tokens.access_token not in row.access_token_enc  # sealed, like OAuth grants
    assert tokens.refresh_token not in row.refresh_token_enc


@pytest.mark.parametrize("provider", PROVIDERS)
def test_an_expired_own_access_token_is_refreshed_like_an_oauth_grant(
    client: TestClient, rt: Runtime, sandbox: RunningSandbox, provider: str
) -> None:
    tokens = sandbox_tokens(sandbox, provider, size=50, seed=36)
    body = {"access_token": "stale", "refresh_token": tokens.refresh_token, "expires_in": 0}
    response = client.post(f"{API}/{provider}/jobs", json=body, headers=as_user("jan"))
    assert response.status_code == 201, response.text
    drain(rt)
    assert_consistent(rt.engine, rt.jobs.get(UUID(response.json()["job"]["id"])), 50)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_without_a_refresh_token_the_job_fails_clearly_when_the_token_expires(
    client: TestClient, rt: Runtime, sandbox: RunningSandbox, provider: str
) -> None:
    tokens = sandbox_tokens(sandbox, provider, size=20, seed=37)
    body = {"access_token": tokens.access_token, "expires_in": 0}
    response = client.post(f"{API}/{provider}/jobs", json=body, headers=as_user("kai"))
    drain(rt)
    job = rt.jobs.get(UUID(response.json()["job"]["id"]))
    assert job.status is JobStatus.FAILED
    assert "no refresh token" in (job.error_message or "")
    assert grant_row(rt, "kai", provider).status == "refresh_failed"


_BAD_BODIES: list[Any] = [
    {},
    {"access_token": ""},
    {"access_token": None},
    {"access_token": 12345},
    {"access_token": ["a"]},
    {"access_token": "x" * 9000},
    {"access_token": "has a space"},
    {"access_token": "ok", "refresh_token": ""},
    {"access_token": "ok", "refresh_token": 7},
    {"access_token": "ok", "expires_in": -1},
    {"access_token": "ok", "expires_in": "3600"},
    {"access_token": "ok", "expires_in": True},
    {"access_token": "ok", "expires_in": 1.5},
    {"access_token": "ok", "scope": "everything"},
    ["access_token"],
    "access_token",
]


@pytest.mark.parametrize("body", _BAD_BODIES)
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_bad_own_tokens_get_a_4xx_json_error_and_create_nothing(
    client: TestClient, rt: Runtime, body: Any
) -> None:
    response = client.post(f"{API}/google/jobs", json=body, headers=as_user("lena"))
    assert_error(response, 422)
    assert count_rows(rt, jobs) == count_rows(rt, provider_grants) == 0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_own_tokens_for_an_unknown_provider_or_without_a_jwt_are_refused(
    client: TestClient, rt: Runtime
) -> None:
    body = {"access_token": "ok"}
    assert_error(client.post(f"{API}/yahoo/jobs", json=body, headers=as_user("mia")), 404)
    assert_error(client.post(f"{API}/google/jobs", json=body), 401)
    garbled = client.post(
        f"{API}/google/jobs",
        content=b"{not json",
        headers=as_user("mia") | {"Content-Type": "application/json"},
    )
    assert_error(garbled, 422)
    assert count_rows(rt, jobs) == 0
