"""The OAuth client against the sandbox's OAuth servers over loopback: real HTTP, no mocks."""

from __future__ import annotations

import base64
import dataclasses
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from contact_import.errors import (
    AccessRevoked,
    AccessTokenExpired,
    ConfigError,
    ProviderUnavailable,
    RequestRejected,
)
from contact_import.providers.base import ContactSource
from contact_import.providers.google import GoogleContactsSource
from contact_import.providers.microsoft import MicrosoftContactsSource
from contact_import.providers.oauth import (
    OAuthProvider,
    TokenSet,
    authorization_url,
    exchange_code,
    new_pkce_verifier,
    oauth_provider,
    refresh_access_token,
)
from contact_import.sandbox.accounts import Account, Faults
from contact_import.sandbox.oauth_store import (
    GOOGLE_CLIENT_ID,
    GOOGLE_CLIENT_SECRET,
    MICROSOFT_CLIENT_ID,
    MICROSOFT_CLIENT_SECRET,
    OAuthStore,
)
from contact_import.sandbox.server import RunningSandbox, start_sandbox
from contact_import.sandbox.state import SandboxState
from contact_import.settings import Settings

REDIRECT_URI = "http://127.0.0.1:8000/api/v1/contacts/import/callback"
NOW = datetime(2030, 1, 1, tzinfo=UTC)
PROVIDERS = ["google", "microsoft"]


def sandbox_settings(base_url: str, **overrides: str) -> Settings:
    values = {
        "google_auth_url": f"{base_url}/o/oauth2/v2/auth",
        "google_token_url": f"{base_url}/token",
        "google_client_id": GOOGLE_CLIENT_ID,
        "google_client_secret": GOOGLE_CLIENT_SECRET,
        "microsoft_login_url": base_url,
        "microsoft_client_id": MICROSOFT_CLIENT_ID,
        "microsoft_client_secret": MICROSOFT_CLIENT_SECRET,
    }
    return Settings(contact_import_env="development", **(values | overrides))  # type: ignore[arg-type]


def provider_for(name: str, sandbox: RunningSandbox, **overrides: str) -> OAuthProvider:
    return oauth_provider(name, sandbox_settings(sandbox.base_url, **overrides))


@dataclasses.dataclass
class Authorized:
    code: str
    verifier: str
    state: str


DEFAULT_HINT = "contacts:25,seed:7"


def authorize(
    client: httpx.Client,
    provider: OAuthProvider,
    *,
    login_hint: str | None = DEFAULT_HINT,
    state: str = "state-1",
) -> Authorized:
    """What the user's browser does: open the authorize URL and come back to the callback."""
    verifier = new_pkce_verifier()
    url = authorization_url(
        provider,
        redirect_uri=REDIRECT_URI,
        state=state,
        code_verifier=verifier,
        login_hint=login_hint,
    )
    response = client.get(url, follow_redirects=False)
    assert response.status_code == 302
    location = response.headers["location"]
    assert location.startswith(REDIRECT_URI + "?")
    query = parse_qs(urlsplit(location).query)
    assert query["state"] == [state]
    assert "error" not in query
    return Authorized(query["code"][0], verifier, state)


def redeem(
    client: httpx.Client,
    provider: OAuthProvider,
    authorized: Authorized,
    *,
    verifier: str | None = None,
    redirect_uri: str = REDIRECT_URI,
) -> TokenSet:
    """Exchange the code the authorize step brought back (with its own verifier by default)."""
    return exchange_code(
        client,
        provider,
        code=authorized.code,
        redirect_uri=redirect_uri,
        code_verifier=authorized.verifier if verifier is None else verifier,
        now=NOW,
    )


def connect(
    client: httpx.Client, provider: OAuthProvider, *, login_hint: str | None = DEFAULT_HINT
) -> TokenSet:
    return redeem(client, provider, authorize(client, provider, login_hint=login_hint))


def source_for(
    name: str, client: httpx.Client, sandbox: RunningSandbox, access_token: str
) -> ContactSource:
    cls = GoogleContactsSource if name == "google" else MicrosoftContactsSource
    return cls(client, api_url=sandbox.base_url, access_token=access_token, max_retries=0)


def count_contacts(source: ContactSource) -> int:
    total, cursor = 0, None
    while True:
        page = source.fetch_page(cursor)
        total += len(page.contacts)
        cursor = page.next_cursor
        if cursor is None:
            return total


def assert_keeps_secrets(error: BaseException, *secrets: str | None) -> None:
    texts = [str(error), repr(error)]
    cause = error.__cause__
    if cause is not None:
        texts += [str(cause), repr(cause)]
    for secret in filter(None, secrets):
        assert all(secret not in text for text in texts)


def sandbox_account(
    sandbox: RunningSandbox, size: int = 25, *, access_token_ttl: int = 3600
) -> Account:
    faults = Faults(access_token_ttl=access_token_ttl)
    return sandbox.state.new_account(size, seed=5, faults=faults)


# --- the whole flow ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", PROVIDERS)
def test_the_whole_flow_ends_in_a_token_that_lists_the_contacts(
    name: str, client: httpx.Client, sandbox: RunningSandbox
) -> None:
    tokens = connect(client, provider_for(name, sandbox))

    assert tokens.refresh_token
    assert tokens.expires_at == NOW + timedelta(seconds=3600)
    assert tokens.scope is not None
    assert "***" in repr(tokens)
    assert tokens.access_token not in repr(tokens)
    assert count_contacts(source_for(name, client, sandbox, tokens.access_token)) == 25


@pytest.mark.parametrize("name", PROVIDERS)
def test_login_hint_selects_an_existing_account(
    name: str, client: httpx.Client, sandbox: RunningSandbox
) -> None:
    account = sandbox_account(sandbox, size=3)
    tokens = connect(client, provider_for(name, sandbox), login_hint=account.id)
    assert sandbox.state.account(tokens.access_token) is account


def test_without_a_login_hint_a_new_account_gets_the_default_book(client: httpx.Client) -> None:
    with start_sandbox(SandboxState(default_size=12)) as own:
        tokens = connect(client, provider_for("google", own), login_hint=None)
        assert count_contacts(source_for("google", client, own, tokens.access_token)) == 12


@pytest.mark.parametrize("name", PROVIDERS)
def test_the_state_comes_back_verbatim(
    name: str, client: httpx.Client, sandbox: RunningSandbox
) -> None:
    state = "a b/c?d=é&e=+%20"
    assert authorize(client, provider_for(name, sandbox), state=state).state == state


# --- the code exchange fails closed ------------------------------------------------------------


@pytest.mark.parametrize("name", PROVIDERS)
def test_a_wrong_pkce_verifier_is_refused(
    name: str, client: httpx.Client, sandbox: RunningSandbox
) -> None:
    provider = provider_for(name, sandbox)
    authorized = authorize(client, provider)
    wrong = new_pkce_verifier()
    with pytest.raises(RequestRejected, match="refused the authorization code") as caught:
        redeem(client, provider, authorized, verifier=wrong)
    assert_keeps_secrets(caught.value, authorized.code, wrong, authorized.verifier)
    # the failed attempt spent the code: the right verifier cannot use it any more
    with pytest.raises(RequestRejected):
        redeem(client, provider, authorized)


@pytest.mark.parametrize("name", PROVIDERS)
def test_a_code_is_used_once(name: str, client: httpx.Client, sandbox: RunningSandbox) -> None:
    provider = provider_for(name, sandbox)
    authorized = authorize(client, provider)
    options = {
        "code": authorized.code,
        "redirect_uri": REDIRECT_URI,
        "code_verifier": authorized.verifier,
        "now": NOW,
    }
    exchange_code(client, provider, **options)  # type: ignore[arg-type]
    with pytest.raises(RequestRejected, match="start connecting") as caught:
        exchange_code(client, provider, **options)  # type: ignore[arg-type]
    assert_keeps_secrets(caught.value, authorized.code, authorized.verifier)


@pytest.mark.parametrize("name", PROVIDERS)
def test_the_redirect_uri_must_match_the_authorize_one(
    name: str, client: httpx.Client, sandbox: RunningSandbox
) -> None:
    provider = provider_for(name, sandbox)
    authorized = authorize(client, provider)
    with pytest.raises(RequestRejected):
        redeem(client, provider, authorized, redirect_uri=REDIRECT_URI + "/elsewhere")


def test_an_expired_code_is_refused(client: httpx.Client) -> None:
    clock = [1000.0]
    state = SandboxState(oauth=OAuthStore(clock=lambda: clock[0]))
    with start_sandbox(state) as own:
        provider = provider_for("microsoft", own)
        authorized = authorize(client, provider)
        clock[0] += 61
        with pytest.raises(RequestRejected):
            redeem(client, provider, authorized)


@pytest.mark.parametrize("name", PROVIDERS)
def test_a_wrong_client_secret_is_a_config_error(
    name: str, client: httpx.Client, sandbox: RunningSandbox
) -> None:
    good = provider_for(name, sandbox)
    authorized = authorize(client, good)
    bad = dataclasses.replace(good, client_secret="not-the-secret-at-all")
    with pytest.raises(ConfigError, match="client id or secret is wrong") as caught:
        redeem(client, bad, authorized)
    assert f"{name.upper()}_CLIENT_SECRET" in str(caught.value)
    assert_keeps_secrets(caught.value, bad.client_secret, good.client_secret, authorized.code)


def test_the_token_endpoint_takes_http_basic_client_credentials(
    client: httpx.Client, sandbox: RunningSandbox
) -> None:
    provider = provider_for("google", sandbox)
    authorized = authorize(client, provider)
    basic = base64.b64encode(f"{GOOGLE_CLIENT_ID}:{GOOGLE_CLIENT_SECRET}".encode()).decode()
    response = client.post(
        provider.token_url,
        data={
            "grant_type": "authorization_code",
            "code": authorized.code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": authorized.verifier,
        },
        headers={"Authorization": f"Basic {basic}"},
    )
    assert response.status_code == 200
    assert set(response.json()) == {
        "access_token", "token_type", "expires_in", "refresh_token", "scope",
    }  # fmt: skip


def test_microsoft_errors_carry_aadsts_codes(client: httpx.Client, sandbox: RunningSandbox) -> None:
    provider = provider_for("microsoft", sandbox)
    response = client.post(
        provider.token_url,
        data={
            "grant_type": "authorization_code",
            "code": "no-such-code",
            "redirect_uri": REDIRECT_URI,
            "code_verifier": new_pkce_verifier(),
            "client_id": MICROSOFT_CLIENT_ID,
            "client_secret": MICROSOFT_CLIENT_SECRET,
        },
    )
    body = response.json()
    assert response.status_code == 400
    assert body["error"] == "invalid_grant"
    assert body["error_description"].startswith("AADSTS70000: ")
    assert body["error_codes"] == [70000]


def test_google_gives_no_refresh_token_without_offline_access(
    client: httpx.Client, sandbox: RunningSandbox
) -> None:
    provider = dataclasses.replace(provider_for("google", sandbox), extra_authorize_params={})
    assert connect(client, provider).refresh_token is None


# --- the authorize endpoint fails closed -------------------------------------------------------


@pytest.mark.parametrize("name", PROVIDERS)
@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"code_challenge": None}, "invalid_request"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge": "short"}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"scope": "openid email"}, "invalid_scope"),
        ({"login_hint": "no-such-account"}, "invalid_request"),
        ({"login_hint": "contacts:lots"}, "invalid_request"),
    ],
)
def test_a_bad_authorize_request_redirects_back_with_an_error(
    name: str,
    change: dict[str, str | None],
    error: str,
    client: httpx.Client,
    sandbox: RunningSandbox,
) -> None:
    """``None`` in ``change`` leaves the parameter out."""
    provider = provider_for(name, sandbox)
    url = authorization_url(
        provider, redirect_uri=REDIRECT_URI, state="s-9", code_verifier=new_pkce_verifier()
    )
    params = dict(httpx.URL(url).params) | change
    params = {key: value for key, value in params.items() if value is not None}
    response = client.get(provider.authorize_url, params=params, follow_redirects=False)

    assert response.status_code == 302
    query = parse_qs(urlsplit(response.headers["location"]).query)
    assert query["error"] == [error]
    assert query["state"] == ["s-9"]
    assert "code" not in query


@pytest.mark.parametrize(
    ("param", "value"),
    [("client_id", "someone-else"), ("redirect_uri", "not-a-url"), ("redirect_uri", "")],
)
def test_an_untrusted_client_or_redirect_uri_gets_no_redirect(
    param: str, value: str, client: httpx.Client, sandbox: RunningSandbox
) -> None:
    provider = provider_for("google", sandbox)
    url = authorization_url(
        provider, redirect_uri=REDIRECT_URI, state="s", code_verifier=new_pkce_verifier()
    )
    params = dict(httpx.URL(url).params) | {param: value}
    response = client.get(provider.authorize_url, params=params, follow_redirects=False)
    assert response.status_code == 400
    assert "location" not in response.headers


def test_a_google_client_is_not_a_microsoft_client(
    client: httpx.Client, sandbox: RunningSandbox
) -> None:
    provider = provider_for("microsoft", sandbox, microsoft_client_id=GOOGLE_CLIENT_ID)
    url = authorization_url(
        provider, redirect_uri=REDIRECT_URI, state="s", code_verifier=new_pkce_verifier()
    )
    assert client.get(url, follow_redirects=False).status_code == 400


# --- refresh -----------------------------------------------------------------------------------


def test_google_refresh_keeps_the_refresh_token(
    client: httpx.Client, sandbox: RunningSandbox
) -> None:
    provider = provider_for("google", sandbox)
    first = connect(client, provider)
    assert first.refresh_token is not None

    later = NOW + timedelta(hours=2)
    second = refresh_access_token(client, provider, first.refresh_token, now=later)
    third = refresh_access_token(client, provider, first.refresh_token, now=later)

    assert second.refresh_token == third.refresh_token == first.refresh_token
    assert len({first.access_token, second.access_token, third.access_token}) == 3
    assert second.expires_at == later + timedelta(seconds=3600)
    assert count_contacts(source_for("google", client, sandbox, third.access_token)) == 25


def test_microsoft_rotates_the_refresh_token_and_the_old_one_dies_after_its_grace(
    client: httpx.Client, sandbox: RunningSandbox
) -> None:
    provider = provider_for("microsoft", sandbox)
    first = connect(client, provider)
    assert first.refresh_token is not None

    second = refresh_access_token(client, provider, first.refresh_token, now=NOW)
    assert second.refresh_token not in {None, first.refresh_token}
    assert count_contacts(source_for("microsoft", client, sandbox, second.access_token)) == 25

    # one more use of the old token is forgiven (a client that lost the answer), then no more
    refresh_access_token(client, provider, first.refresh_token, now=NOW)
    with pytest.raises(AccessRevoked) as caught:
        refresh_access_token(client, provider, first.refresh_token, now=NOW)
    assert_keeps_secrets(caught.value, first.refresh_token, MICROSOFT_CLIENT_SECRET)

    assert second.refresh_token is not None
    third = refresh_access_token(client, provider, second.refresh_token, now=NOW)
    assert third.refresh_token not in {None, second.refresh_token}


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("google", "Google access was revoked — reconnect your account"),
        ("microsoft", "Microsoft access was revoked — reconnect your account"),
    ],
)
def test_a_revoked_grant_fails_with_a_readable_message(
    name: str, message: str, client: httpx.Client, sandbox: RunningSandbox
) -> None:
    provider = provider_for(name, sandbox)
    tokens = connect(client, provider)
    assert tokens.refresh_token is not None
    source = source_for(name, client, sandbox, tokens.access_token)
    source.fetch_page(None)

    sandbox.state.revoke(tokens.refresh_token)

    with pytest.raises(AccessTokenExpired):
        source.fetch_page(None)
    with pytest.raises(AccessRevoked) as caught:
        refresh_access_token(client, provider, tokens.refresh_token, now=NOW)
    assert str(caught.value) == message
    assert_keeps_secrets(caught.value, tokens.refresh_token, tokens.access_token)


def test_the_revoked_fault_knob_refuses_the_code_exchange_too(
    client: httpx.Client, sandbox: RunningSandbox
) -> None:
    account = sandbox_account(sandbox)
    provider = provider_for("google", sandbox)
    authorized = authorize(client, provider, login_hint=account.id)
    sandbox.state.revoke(account)
    with pytest.raises(RequestRejected):
        redeem(client, provider, authorized)


@pytest.mark.parametrize("name", PROVIDERS)
def test_an_access_token_expires_after_its_ttl_and_a_refresh_brings_a_new_one(
    name: str, client: httpx.Client
) -> None:
    clock = [1000.0]  # the sandbox's clock: its codes and access tokens expire on it
    with start_sandbox(SandboxState(oauth=OAuthStore(clock=lambda: clock[0]))) as own:
        account = sandbox_account(own, access_token_ttl=60)
        provider = provider_for(name, own)
        tokens = connect(client, provider, login_hint=account.id)
        assert tokens.expires_at == NOW + timedelta(seconds=60)
        source = source_for(name, client, own, tokens.access_token)
        assert source.fetch_page(None).contacts
        clock[0] += 59
        assert source.fetch_page(None).contacts  # not yet

        clock[0] += 1
        with pytest.raises(AccessTokenExpired) as caught:
            source.fetch_page(None)
        assert_keeps_secrets(caught.value, tokens.access_token)

        assert tokens.refresh_token is not None
        fresh = refresh_access_token(client, provider, tokens.refresh_token, now=NOW)
        assert source_for(name, client, own, fresh.access_token).fetch_page(None).contacts


def test_an_unreachable_token_endpoint_is_transient(client: httpx.Client) -> None:
    with start_sandbox(SandboxState()) as gone:
        provider = provider_for("google", gone)
    with pytest.raises(ProviderUnavailable):
        refresh_access_token(client, provider, "1//whatever", now=NOW)


def test_a_token_url_that_is_not_a_token_endpoint_is_rejected(
    client: httpx.Client, sandbox: RunningSandbox
) -> None:
    provider = provider_for("google", sandbox, google_token_url=f"{sandbox.base_url}/nowhere")
    with pytest.raises(RequestRejected, match="HTTP 404"):
        refresh_access_token(client, provider, "1//whatever", now=NOW)


def test_the_revoked_knob_is_a_boolean_on_the_control_api(
    client: httpx.Client, sandbox: RunningSandbox
) -> None:
    accounts = f"{sandbox.base_url}/_sandbox/accounts"
    refused = client.post(accounts, json={"size": 3, "faults": {"revoked": 1}})
    assert refused.status_code == 400
    created = client.post(accounts, json={"size": 3, "faults": {"revoked": True}})
    assert created.status_code == 201
    with pytest.raises(AccessTokenExpired):
        source_for("google", client, sandbox, created.json()["access_token"]).fetch_page(None)
