"""OAuth bound to the browser and to the user (RFC 9700 §4.7): the account-linking CSRF.

A browser here is an HTTP client with its own cookie jar (a TestClient against the app); the
sandbox's real OAuth server gives consent over loopback for whoever opens the link. An attacker
who sends their consent link to a victim must get nothing: no code exchange, no grant, no job,
no contacts, for anyone.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit
from uuid import UUID

import httpx
import pytest
from sqlalchemy import func, select, update
from starlette.exceptions import StarletteDeprecationWarning

from contact_import.connect import OTHER_BROWSER, OTHER_USER
from contact_import.crypto import TokenCipher
from contact_import.domain.job import JobStatus
from contact_import.providers.oauth import exchange_code, oauth_provider
from contact_import.runner.tick import run_tick
from contact_import.runtime import Runtime
from contact_import.sandbox.server import RunningSandbox
from contact_import.store.oauth_states import MAX_LIVE_STATES, prune_expired_states
from contact_import.store.schema import contacts, jobs, oauth_states, provider_grants
from contact_import.web.app import create_app
from contact_import.web.flow_cookie import COOKIE_PREFIX, flow_cookie_name
from tests.helpers import SettingsFor, assert_consistent, drain
from tests.integration.test_api import CRON_SECRET, JWT_SECRET, as_user, assert_error

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

API = "/api/v1/contacts/import"
INVALID = "invalid, expired or already used"
RETURN_URL = "https://app.example/contacts/connected?from=settings"
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def rt(settings_for: SettingsFor) -> Iterator[Runtime]:
    with Runtime.build(settings_for(cron_secret=CRON_SECRET, jwt_secret=JWT_SECRET)) as runtime:
        yield runtime


@contextmanager
def browser(rt: Runtime, base_url: str = "http://testserver") -> Iterator[TestClient]:
    """One browser: its own cookie jar, talking to the app."""
    app = create_app(rt.settings, runtime=rt)
    with TestClient(app, base_url=base_url, follow_redirects=False) as client:
        yield client


def start(client: TestClient, user: str, provider: str = "google") -> str:
    """What the app's page does for a signed-in user: the consent URL (and the cookie)."""
    response = client.post(f"{API}/{provider}/start", headers=as_user(user))
    assert response.status_code == 200, response.text
    return str(response.json()["auth_url"])


def consent(auth_url: str, account: str) -> str:
    """Whoever opens the consent link approves with ``account``: the callback path + query."""
    approved = httpx.get(f"{auth_url}&login_hint={quote(account)}", follow_redirects=False)
    assert approved.status_code == 302, approved.text
    location = urlsplit(approved.headers["location"])
    return f"{location.path}?{location.query}"


def query_of(callback: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(callback).query).items()}


def counts(rt: Runtime) -> tuple[int, int, int]:
    """(jobs, grants, contacts) of everyone."""
    with rt.engine.connect() as conn:
        return tuple(  # type: ignore[return-value]
            conn.execute(select(func.count()).select_from(table)).scalar_one()
            for table in (jobs, provider_grants, contacts)
        )


def live_states(rt: Runtime, user: str, provider: str = "google") -> int:
    c = oauth_states.c
    stmt = (
        select(func.count())
        .select_from(oauth_states)
        .where(c.user_id == user, c.provider == provider, c.used_at.is_(None))
    )
    with rt.engine.connect() as conn:
        return int(conn.execute(stmt).scalar_one())


def assert_nothing_for(client: TestClient, *users: str) -> None:
    for user in users:
        listed = client.get(f"{API}/jobs", headers=as_user(user))
        assert listed.json() == {"jobs": []}
        assert client.get("/api/v1/contacts", headers=as_user(user)).json() == {
            "contacts": [],
            "next_cursor": None,
        }


def assert_code_unspent(rt: Runtime, callback: str) -> None:
    """The provider still accepts the code: nobody exchanged it (we do it here, as a probe)."""
    params = query_of(callback)
    with rt.engine.connect() as conn:
        row = conn.execute(select(oauth_states).where(oauth_states.c.used_at.is_not(None))).one()
    verifier = TokenCipher(rt.settings.token_keys()).decrypt(row.code_verifier_enc)
    tokens = exchange_code(
        rt.http,
        oauth_provider("google", rt.settings),
        code=params["code"],
        redirect_uri=row.redirect_uri,
        code_verifier=verifier,
        now=datetime.now(UTC),
    )
    assert tokens.access_token


# --- the attack ---------------------------------------------------------------------------


def test_a_consent_link_opened_in_another_browser_creates_nothing_for_anyone(
    rt: Runtime, sandbox: RunningSandbox
) -> None:
    victim_account = sandbox.state.new_account(40, seed=21).id
    with browser(rt) as attacker, browser(rt) as victim:
        auth_url = start(attacker, "mallory")  # ... and mallory mails the link to victor
        start(victim, "victor")  # victor's own flow: his cookie for it proves nothing here
        callback = consent(auth_url, victim_account)

        refused = victim.get(callback)
        assert assert_error(refused, 400) == OTHER_BROWSER
        assert counts(rt) == (0, 0, 0)
        # The state is used up: the attacker's own browser (which holds the cookie) cannot
        # finish it with the victim's code either.
        assert INVALID in assert_error(attacker.get(callback), 400)
        assert INVALID in assert_error(victim.get(callback), 400)

        drain(rt)
        assert counts(rt) == (0, 0, 0)
        assert_nothing_for(attacker, "mallory", "victor")
    assert_code_unspent(rt, callback)


def test_a_jwt_of_another_user_completes_nothing(rt: Runtime, sandbox: RunningSandbox) -> None:
    victim_account = sandbox.state.new_account(40, seed=22).id
    with browser(rt) as attacker, browser(rt) as victim_app:
        callback = consent(start(attacker, "mallory"), victim_account)
        body = {"code": query_of(callback)["code"], "state": query_of(callback)["state"]}

        refused = victim_app.post(f"{API}/google/callback", json=body, headers=as_user("victor"))
        assert assert_error(refused, 400) == OTHER_USER
        assert counts(rt) == (0, 0, 0)
        # used up: not even its own user can finish it now
        again = attacker.post(f"{API}/google/callback", json=body, headers=as_user("mallory"))
        assert INVALID in assert_error(again, 400)
        assert counts(rt) == (0, 0, 0)
        assert_nothing_for(attacker, "mallory", "victor")
    assert_code_unspent(rt, callback)


def nonce_in(client: TestClient) -> str:
    (nonce,) = [v for k, v in client.cookies.items() if k.startswith(COOKIE_PREFIX)]
    return str(nonce)


@sqlite_only
@pytest.mark.parametrize(
    "cookie", ["none", "forged value", "another flow's nonce", "the flow's own nonce"]
)
def test_without_the_flows_own_cookie_the_callback_creates_nothing(
    rt: Runtime, sandbox: RunningSandbox, cookie: str
) -> None:
    with browser(rt) as starter, browser(rt) as other:
        callback = consent(start(starter, "alice"), sandbox.state.new_account(5, seed=1).id)
        nonce: str | None = None
        if cookie == "forged value":
            nonce = "forged"
        elif cookie == "another flow's nonce":
            start(other, "alice")  # the same user, in the other browser
            nonce = nonce_in(other)
        elif cookie == "the flow's own nonce":
            nonce = nonce_in(starter)  # the control: copied over, it works
        if nonce is not None:
            name = flow_cookie_name(query_of(callback)["state"])
            # http.cookiejar files a dotless host under "<host>.local"
            other.cookies.set(name, nonce, domain="testserver.local", path=urlsplit(callback).path)
        if cookie == "the flow's own nonce":
            assert other.get(callback).status_code == 303
            assert counts(rt)[:2] == (1, 1)
            return
        assert assert_error(other.get(callback), 400) == OTHER_BROWSER
        assert counts(rt) == (0, 0, 0)
        assert INVALID in assert_error(starter.get(callback), 400)  # used up
        assert counts(rt) == (0, 0, 0)


# --- the two legitimate ways ----------------------------------------------------------------


def test_the_browser_that_started_completes_the_import(
    rt: Runtime, sandbox: RunningSandbox
) -> None:
    with browser(rt) as alice:
        callback = consent(start(alice, "alice"), sandbox.state.new_account(120, seed=23).id)
        landed = alice.get(callback)
        assert landed.status_code == 303, landed.text
        status_page = landed.headers["location"]
        # The nonce cookie is spent: the callback asks the browser to drop it.
        dropped = SimpleCookie(landed.headers["set-cookie"])
        (morsel,) = dropped.values()
        assert morsel.key == flow_cookie_name(query_of(callback)["state"])
        assert morsel["max-age"] == "0"

        (job,) = rt.jobs.list_jobs(user_id="alice")
        drain(rt)
        assert_consistent(rt.engine, rt.jobs.get(job.id), 120)
        listed = alice.get("/api/v1/contacts", params={"limit": 1000}, headers=as_user("alice"))
        with rt.engine.connect() as conn:
            stored = conn.execute(select(func.count()).select_from(contacts)).scalar_one()
        assert len(listed.json()["contacts"]) == stored > 0
        assert alice.get(status_page).status_code == 200


def test_an_app_on_another_site_completes_with_the_users_jwt(
    settings_for: SettingsFor,
    sandbox: RunningSandbox,
) -> None:
    settings = settings_for(jwt_secret=JWT_SECRET, oauth_return_url=RETURN_URL)
    with Runtime.build(settings) as rt, browser(rt) as app_backend, browser(rt) as user_browser:
        callback = consent(start(app_backend, "alice"), sandbox.state.new_account(80, seed=24).id)
        # The provider sends the user's browser back to us; we forward it to the app's page.
        forwarded = user_browser.get(callback)
        assert forwarded.status_code == 303, forwarded.text
        target = urlsplit(forwarded.headers["location"])
        assert f"{target.scheme}://{target.netloc}{target.path}" == RETURN_URL.partition("?")[0]
        params = query_of(forwarded.headers["location"])
        assert params == {"from": "settings", "provider": "google"} | query_of(callback)
        assert counts(rt) == (0, 0, 0)  # forwarding completes nothing

        # The app's page posts what it received, with the signed-in user's JWT.
        body = {"code": params["code"], "state": params["state"]}
        done = app_backend.post(f"{API}/google/callback", json=body, headers=as_user("alice"))
        assert done.status_code == 200, done.text
        answer = done.json()
        assert set(answer) == {"job", "status_url"}
        # An 80-contact book is imported by the callback itself (CALLBACK_BUDGET_SECONDS).
        assert answer["job"]["status"] == JobStatus.COMPLETED.value
        status_url = urlsplit(answer["status_url"])
        assert answer["status_url"].startswith(f"{settings.public_base_url}/imports/")
        drain(rt)
        assert_consistent(rt.engine, rt.jobs.get(UUID(answer["job"]["id"])), 80)
        page = user_browser.get(f"{status_url.path}?{status_url.query}")
        assert page.status_code == 200


@sqlite_only
def test_the_return_url_also_receives_the_providers_refusal(settings_for: SettingsFor) -> None:
    settings = settings_for(jwt_secret=JWT_SECRET, oauth_return_url=RETURN_URL)
    with Runtime.build(settings) as rt, browser(rt) as client:
        refused = client.get(f"{API}/microsoft/callback", params={"error": "access_denied"})
        assert refused.status_code == 303
        assert query_of(refused.headers["location"]) == {
            "from": "settings",
            "provider": "microsoft",
            "error": "access_denied",
        }
        assert_error(client.get(f"{API}/yahoo/callback", params={"code": "c"}), 404)


# --- the cookie itself ----------------------------------------------------------------------


def cookie_of(response: httpx.Response) -> Any:
    (morsel,) = SimpleCookie(response.headers["set-cookie"]).values()
    assert morsel.key.startswith(COOKIE_PREFIX)
    return morsel


@sqlite_only
@pytest.mark.parametrize(
    ("public_base_url", "secure", "path"),
    [
        ("http://127.0.0.1:8000", False, f"{API}/google/callback"),
        ("https://contacts.example.com", True, f"{API}/google/callback"),
        ("HTTPS://example.com/contacts/", True, f"/contacts{API}/google/callback"),
    ],
)
def test_the_nonce_cookie_attributes(
    settings_for: SettingsFor,
    public_base_url: str,
    secure: bool,
    path: str,
) -> None:
    settings = settings_for(jwt_secret=JWT_SECRET, public_base_url=public_base_url)
    with Runtime.build(settings) as rt, browser(rt) as client:
        response = client.post(f"{API}/google/start", headers=as_user("alice"))
        assert response.status_code == 200, response.text
        morsel = cookie_of(response)
        assert morsel["httponly"] is True
        assert morsel["samesite"].lower() == "lax"
        assert morsel["path"] == path
        assert morsel["max-age"] == "600"
        assert bool(morsel["secure"]) is secure
        assert not morsel["domain"]  # host-only
        state = query_of(response.json()["auth_url"])["state"]
        assert morsel.key == flow_cookie_name(state)
        assert state not in response.headers["set-cookie"]


@sqlite_only
def test_with_https_the_secure_cookie_completes_over_https(
    settings_for: SettingsFor,
    sandbox: RunningSandbox,
) -> None:
    settings = settings_for(jwt_secret=JWT_SECRET, public_base_url="https://contacts.example.com")
    with Runtime.build(settings) as rt, browser(rt, "https://testserver") as client:
        callback = consent(start(client, "alice"), sandbox.state.new_account(5, seed=2).id)
        landed = client.get(callback)
        assert landed.status_code == 303, landed.text
        assert landed.headers["location"].startswith("/imports/")
        assert counts(rt)[:2] == (1, 1)


@sqlite_only
def test_two_flows_in_one_browser_each_keep_their_own_cookie(
    settings_for: SettingsFor,
    sandbox: RunningSandbox,
) -> None:
    # The callbacks only queue (no instant import), so bob's first job is still active.
    settings = settings_for(jwt_secret=JWT_SECRET, callback_budget_seconds=0)
    with Runtime.build(settings) as rt, browser(rt) as client:
        google = consent(start(client, "alice", "google"), sandbox.state.new_account(5, seed=3).id)
        first = consent(start(client, "bob", "microsoft"), sandbox.state.new_account(5, seed=4).id)
        second = consent(start(client, "bob", "microsoft"), sandbox.state.new_account(5, seed=5).id)
        for callback in (first, google):
            assert client.get(callback).status_code == 303
        assert {j.user_id for j in rt.jobs.list_jobs()} == {"alice", "bob"}
        # bob's second sign-in for the same provider: its own cookie, its own state
        assert client.get(second).status_code == 303
        assert len(rt.jobs.list_jobs(user_id="bob")) == 1  # one active job per provider


# --- how many states one user can hold ------------------------------------------------------


def test_a_new_start_replaces_the_oldest_beyond_the_limit(
    rt: Runtime, sandbox: RunningSandbox
) -> None:
    account = sandbox.state.new_account(5, seed=6).id
    with browser(rt) as client:
        urls = [start(client, "flood") for _ in range(MAX_LIVE_STATES + 7)]
        start(client, "flood", "microsoft")
        start(client, "neighbour")
        assert live_states(rt, "flood") == MAX_LIVE_STATES
        assert live_states(rt, "flood", "microsoft") == live_states(rt, "neighbour") == 1
        oldest_kept = len(urls) - MAX_LIVE_STATES
        assert INVALID in assert_error(client.get(consent(urls[oldest_kept - 1], account)), 400)
        assert client.get(consent(urls[oldest_kept], account)).status_code == 303


def test_concurrent_starts_keep_at_most_the_limit(rt: Runtime) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda _: rt.connections.start("flood", "google"), range(40)))
    assert live_states(rt, "flood") == MAX_LIVE_STATES
    with rt.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(oauth_states)).scalar_one() == 5


def test_the_tick_prunes_expired_states(rt: Runtime) -> None:
    for user in ("a", "b", "c"):
        rt.connections.start(user, "google")
    past = datetime.now(UTC) - timedelta(seconds=1)
    with rt.engine.begin() as conn:
        conn.execute(
            update(oauth_states).where(oauth_states.c.user_id != "c").values(expires_at=past)
        )
    run_tick(rt.jobs, rt.importer, metrics=rt.metrics, budget_seconds=1, max_jobs=1)
    with rt.engine.connect() as conn:
        left = conn.execute(select(oauth_states.c.user_id)).scalars().all()
    assert left == ["c"]
    later = datetime.now(UTC) + timedelta(minutes=11)
    assert prune_expired_states(rt.engine, now=later) == 1
    assert prune_expired_states(rt.engine, now=later) == 0
