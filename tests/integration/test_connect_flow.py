"""Connecting an account through OAuth (sandbox over loopback) and what happens to its tokens."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import func, select, update

from contact_import.domain.job import JobStatus
from contact_import.errors import InvalidOAuthState, RequestRejected
from contact_import.runtime import Runtime
from contact_import.sandbox.accounts import Faults
from contact_import.sandbox.oauth_store import OAuthStore
from contact_import.sandbox.server import RunningSandbox, sandbox_settings, start_sandbox
from contact_import.sandbox.state import SandboxState
from contact_import.store.jobs import Job
from contact_import.store.schema import jobs, metadata, oauth_states, provider_grants
from tests.helpers import (
    SettingsFor,
    assert_consistent,
    before_each_page,
    drain,
    importer_reading,
)

PROVIDERS = ["google", "microsoft"]


@dataclass(frozen=True)
class Approved:
    """What comes back to the callback, and the nonce the starting browser holds."""

    code: str
    state: str
    nonce: str


def authorize(rt: Runtime, user: str, provider: str, login_hint: str) -> Approved:
    """Start the flow and let the sandbox approve it."""
    flow = rt.connections.start(user, provider, login_hint=login_hint)
    response = rt.http.get(flow.auth_url, follow_redirects=False)
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(f"{rt.settings.public_base_url}/api/v1/contacts/import/{provider}/")
    query = parse_qs(urlsplit(location).query)
    assert query["state"] == [flow.state]
    return Approved(query["code"][0], flow.state, flow.browser_nonce)


def complete(rt: Runtime, provider: str, approved: Approved) -> Job:
    """The callback in the browser that started the flow."""
    return rt.connections.complete_in_browser(
        provider, code=approved.code, state=approved.state, browser_nonce=approved.nonce
    )


def connect(rt: Runtime, user: str, provider: str, login_hint: str) -> Job:
    return complete(rt, provider, authorize(rt, user, provider, login_hint))


def count(rt: Runtime, table: object) -> int:
    with rt.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_oauth_flow_ends_in_a_completed_import(runtime: Runtime, provider: str) -> None:
    job = connect(runtime, "olga", provider, "contacts:600,seed:4")
    assert job.status is JobStatus.FETCHING
    drain(runtime)
    done = runtime.jobs.get(job.id)
    assert_consistent(runtime.engine, done, 600)
    grant = runtime.grants.get(done.grant_id)
    assert grant.refresh_token  # offline access was granted
    assert grant.sync_token  # the next import will be incremental


@pytest.mark.parametrize(
    "tamper",
    ["forged", "reused", "expired", "other provider"],
)
def test_a_bad_state_is_refused_and_creates_nothing(runtime: Runtime, tamper: str) -> None:
    approved = authorize(runtime, "pia", "google", "contacts:10,seed:1")
    provider = "google"
    if tamper == "forged":
        approved = replace(approved, state="x" * 43)
    elif tamper == "reused":
        complete(runtime, "google", approved)
        fresh = authorize(runtime, "pia", "google", "contacts:10,seed:1")
        approved = replace(approved, code=fresh.code)
    elif tamper == "expired":
        with runtime.engine.begin() as conn:
            past = datetime.now(UTC) - timedelta(seconds=1)
            conn.execute(update(oauth_states).values(expires_at=past))
    else:
        provider = "microsoft"
    jobs_before, grants_before = count(runtime, jobs), count(runtime, provider_grants)
    with pytest.raises(InvalidOAuthState, match="invalid, expired or already used"):
        complete(runtime, provider, approved)
    assert (count(runtime, jobs), count(runtime, provider_grants)) == (jobs_before, grants_before)


def test_a_wrong_pkce_verifier_is_refused_and_creates_nothing(runtime: Runtime) -> None:
    approved = authorize(runtime, "quinn", "microsoft", "contacts:10,seed:1")
    forged = runtime.grants._cipher.encrypt("v" * 64)  # what an attacker without it would send
    with runtime.engine.begin() as conn:
        conn.execute(update(oauth_states).values(code_verifier_enc=forged))
    with pytest.raises(RequestRejected, match="refused the authorization code"):
        complete(runtime, "microsoft", approved)
    assert count(runtime, jobs) == count(runtime, provider_grants) == 0


@pytest.mark.parametrize("provider", PROVIDERS)
def test_an_expired_access_token_is_refreshed_mid_import(
    provider: str, settings_for: SettingsFor, caplog: pytest.LogCaptureFixture
) -> None:
    clock = [1000.0]  # the sandbox's: its access tokens expire on it

    def half_a_token_lifetime_passes() -> None:
        clock[0] += 30

    with start_sandbox(SandboxState(oauth=OAuthStore(clock=lambda: clock[0]))) as own:
        account = own.state.new_account(1500, seed=2, faults=Faults(access_token_ttl=60))
        with Runtime.build(settings_for(page_size=250, **sandbox_settings(own.base_url))) as rt:
            job = connect(rt, "rob", provider, account.id)
            first = rt.grants.get(job.grant_id)
            first_token = first.access_token
            rt.importer = importer_reading(
                rt, before_each_page(half_a_token_lifetime_passes, rt.importer._sources)
            )
            drain(rt)
            done = rt.jobs.get(job.id)
            assert_consistent(rt.engine, done, 1500)
            assert done.attempts == 1  # refreshed in place, not retried later
            refreshed = rt.grants.get(job.grant_id)
    assert refreshed.access_token != first_token
    # Microsoft rotates refresh tokens and we keep the newest; Google keeps its one.
    assert (refreshed.refresh_token != first.refresh_token) == (provider == "microsoft")
    # Six pages, 30 s apart, outlive a 60 s token: the provider said 401 mid-import.
    assert "access token refused; refreshing it" in caplog.text


@pytest.mark.parametrize(
    ("provider", "message"),
    [
        ("google", "Google access was revoked — reconnect your account"),
        ("microsoft", "Microsoft access was revoked — reconnect your account"),
    ],
)
def test_a_revoked_grant_fails_the_job_at_once_with_a_readable_message(
    runtime: Runtime, sandbox: RunningSandbox, provider: str, message: str
) -> None:
    account = sandbox.state.new_account(300, seed=3)
    job = connect(runtime, "sue", provider, account.id)
    sandbox.state.revoke(account)
    drain(runtime)
    failed = runtime.jobs.get(job.id)
    assert failed.status is JobStatus.FAILED
    assert failed.attempts == 1
    assert failed.error_message == message


def _secrets(rt: Runtime, job: Job) -> list[str]:
    grant = rt.grants.get(job.grant_id)
    found = [grant.access_token, grant.refresh_token, grant.sync_token]
    return [s for s in found if s]


def _all_rows_as_text(rt: Runtime) -> str:
    with rt.engine.connect() as conn:
        return "\n".join(
            repr(tuple(row))
            for table in metadata.sorted_tables
            for row in conn.execute(select(table))
        )


@pytest.mark.parametrize("provider", PROVIDERS)
def test_no_token_in_any_row_or_log_line(
    runtime: Runtime, sandbox: RunningSandbox, provider: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    job = connect(runtime, "tom", provider, "contacts:700,seed:5")
    drain(runtime)
    assert runtime.jobs.get(job.id).status is JobStatus.COMPLETED
    failing_account = sandbox.state.new_account(50, seed=6)
    failing = connect(runtime, "uma", provider, failing_account.id)
    failing_secrets = _secrets(runtime, failing)
    sandbox.state.revoke(failing_account)
    drain(runtime)
    assert runtime.jobs.get(failing.id).status is JobStatus.FAILED
    secrets = _secrets(runtime, job) + failing_secrets
    assert len(secrets) >= 5  # access + refresh + sync of one, access + refresh of the other
    rows, logs = _all_rows_as_text(runtime), caplog.text
    assert rows
    assert logs
    for secret in secrets:
        assert secret not in rows
        assert secret not in logs
