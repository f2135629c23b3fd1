"""The OAuth client's pure parts, and how it reads token endpoint answers (through httpx's
MockTransport: the network is swapped, nothing is patched)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from contact_import.errors import (
    AccessRevoked,
    ConfigError,
    ContactImportError,
    MalformedResponse,
    ProviderUnavailable,
    RateLimited,
    RequestRejected,
)
from contact_import.providers.oauth import (
    OAuthProvider,
    TokenSet,
    authorization_url,
    exchange_code,
    new_pkce_verifier,
    oauth_provider,
    pkce_challenge,
    refresh_access_token,
)
from contact_import.providers.registry import GOOGLE_CONTACTS_SCOPE
from contact_import.settings import Settings

NOW = datetime(2030, 1, 1, tzinfo=UTC)
SECRET = "client-secret-value"
REFRESH = "refresh-token-value"


def settings(**overrides: str | None) -> Settings:
    values: dict[str, str | None] = {
        "google_client_id": "g-id",
        "google_client_secret": SECRET,
        "microsoft_client_id": "m-id",
        "microsoft_client_secret": SECRET,
    }
    return Settings(contact_import_env="development", **(values | overrides))  # type: ignore[arg-type]


# --- PKCE --------------------------------------------------------------------------------------


def test_the_s256_challenge_is_rfc_7636s_example() -> None:
    # RFC 7636, appendix B
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert pkce_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_verifiers_are_long_random_and_of_the_allowed_characters() -> None:
    verifiers = {new_pkce_verifier() for _ in range(50)}
    assert len(verifiers) == 50
    assert all(re.fullmatch(r"[A-Za-z0-9\-._~]{43,128}", v) for v in verifiers)


# --- providers and the authorize URL -----------------------------------------------------------


def test_google_asks_for_offline_access_and_consent() -> None:
    provider = oauth_provider("google", settings())
    url = httpx.URL(
        authorization_url(
            provider, redirect_uri="https://app.example/cb", state="st", code_verifier="v" * 43
        )
    )
    assert str(url).startswith("https://accounts.google.com/o/oauth2/v2/auth?")
    assert dict(url.params) == {
        "response_type": "code",
        "client_id": "g-id",
        "redirect_uri": "https://app.example/cb",
        "scope": GOOGLE_CONTACTS_SCOPE,
        "state": "st",
        "code_challenge": pkce_challenge("v" * 43),
        "code_challenge_method": "S256",
        "access_type": "offline",
        "prompt": "consent",
    }


def test_microsoft_uses_the_tenant_and_asks_for_offline_access() -> None:
    provider = oauth_provider("microsoft", settings(microsoft_tenant="consumers"))
    assert provider.token_url == "https://login.microsoftonline.com/consumers/oauth2/v2.0/token"
    url = httpx.URL(
        authorization_url(
            provider,
            redirect_uri="https://app.example/cb",
            state="st",
            code_verifier="v" * 43,
            login_hint="someone@example.com",
        )
    )
    assert url.path == "/consumers/oauth2/v2.0/authorize"
    assert url.params["scope"] == "Contacts.Read offline_access"
    assert url.params["login_hint"] == "someone@example.com"
    assert "access_type" not in url.params
    assert url.params["code_challenge_method"] == "S256"


@pytest.mark.parametrize(
    ("name", "missing", "env_var"),
    [
        ("google", "google_client_id", "GOOGLE_CLIENT_ID"),
        ("google", "google_client_secret", "GOOGLE_CLIENT_SECRET"),
        ("microsoft", "microsoft_client_id", "MICROSOFT_CLIENT_ID"),
        ("microsoft", "microsoft_client_secret", "MICROSOFT_CLIENT_SECRET"),
    ],
)
def test_a_missing_client_setting_is_named(name: str, missing: str, env_var: str) -> None:
    with pytest.raises(ConfigError, match=env_var):
        oauth_provider(name, settings(**{missing: None}))


def test_the_client_secret_is_not_in_the_providers_repr() -> None:
    assert SECRET not in repr(oauth_provider("google", settings()))


def test_a_token_set_hides_its_tokens() -> None:
    tokens = TokenSet("access-value", REFRESH, NOW, "scope-a")
    assert "access-value" not in repr(tokens)
    assert REFRESH not in str(tokens)
    assert "scope-a" in repr(tokens)


def test_expires_within() -> None:
    tokens = TokenSet("a", None, NOW, None)
    assert tokens.expires_within(NOW - timedelta(seconds=30), timedelta(minutes=1))
    assert not tokens.expires_within(NOW - timedelta(minutes=2), timedelta(minutes=1))
    assert not TokenSet("a", None, None, None).expires_within(NOW, timedelta(days=1))


# --- token endpoint answers --------------------------------------------------------------------


def token_client(answer: Callable[[httpx.Request], httpx.Response]) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(answer))


def refresh_with(
    answer: Callable[[httpx.Request], httpx.Response], name: str = "google"
) -> TokenSet:
    with token_client(answer) as client:
        provider = oauth_provider(name, settings())
        return refresh_access_token(client, provider, REFRESH, now=NOW)


def test_google_refresh_without_a_refresh_token_keeps_the_old_one() -> None:
    body = {"access_token": "new", "expires_in": 3599, "token_type": "Bearer", "scope": "s"}
    tokens = refresh_with(lambda request: httpx.Response(200, json=body))
    assert tokens == TokenSet("new", REFRESH, NOW + timedelta(seconds=3599), "s")


def test_microsoft_refresh_returns_the_rotated_token_and_sends_the_scopes() -> None:
    seen: list[bytes] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.content)
        body = {"access_token": "new", "refresh_token": "rotated", "expires_in": "3600"}
        return httpx.Response(200, json=body)

    tokens = refresh_with(answer, "microsoft")
    assert tokens.refresh_token == "rotated"
    assert tokens.expires_at == NOW + timedelta(seconds=3600)
    form = dict(httpx.QueryParams(seen[0].decode()))
    assert form["scope"] == "Contacts.Read offline_access"
    assert form["grant_type"] == "refresh_token"
    assert form["client_secret"] == SECRET


ERROR_CASES: list[tuple[httpx.Response, type[ContactImportError], str]] = [
    (
        httpx.Response(400, json={"error": "invalid_grant"}),
        AccessRevoked,
        "Google access was revoked",
    ),
    (httpx.Response(401, json={"error": "invalid_client"}), ConfigError, "GOOGLE_CLIENT_SECRET"),
    (
        httpx.Response(400, json={"error": "unauthorized_client"}),
        ConfigError,
        "client id or secret",
    ),
    (
        httpx.Response(400, json={"error": "invalid_scope", "error_description": REFRESH}),
        RequestRejected,
        "HTTP 400 invalid_scope",
    ),
    (
        httpx.Response(400, json={"error": "invalid_request", "error_codes": [900144]}),
        RequestRejected,
        "AADSTS900144",
    ),
    (httpx.Response(400, text="<html>no</html>"), RequestRejected, "HTTP 400"),
    (httpx.Response(503, text="down"), ProviderUnavailable, "HTTP 503"),
    (httpx.Response(200, text="<html>sign in</html>"), MalformedResponse, "not JSON"),
    (
        httpx.Response(200, json={"token_type": "Bearer"}),
        MalformedResponse,
        "without an access token",
    ),
    (
        httpx.Response(200, json={"access_token": "a", "token_type": "mac"}),
        MalformedResponse,
        "not a bearer",
    ),
]


@pytest.mark.parametrize(("response", "error", "message"), ERROR_CASES)
def test_token_endpoint_answers_become_our_errors(
    response: httpx.Response, error: type[ContactImportError], message: str
) -> None:
    with pytest.raises(error, match=message) as caught:
        refresh_with(lambda request: response)
    assert REFRESH not in str(caught.value)
    assert SECRET not in str(caught.value)


def test_a_rate_limit_carries_retry_after() -> None:
    response = httpx.Response(429, headers={"Retry-After": "7"})
    with pytest.raises(RateLimited) as caught:
        refresh_with(lambda request: response)
    assert caught.value.retry_after == 7


def test_a_timeout_is_transient() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    with pytest.raises(ProviderUnavailable, match="did not answer in time"):
        refresh_with(answer)


def test_invalid_grant_at_the_code_exchange_asks_to_connect_again() -> None:
    provider = OAuthProvider(
        name="google",
        authorize_url="https://auth.example/a",
        token_url="https://auth.example/t",
        client_id="id",
        client_secret=SECRET,
        scopes=("s",),
    )
    answer = httpx.Response(400, json={"error": "invalid_grant"})
    with (
        token_client(lambda request: answer) as client,
        pytest.raises(RequestRejected, match="start connecting your Google account again"),
    ):
        exchange_code(
            client, provider, code="the-code", redirect_uri="https://app/cb",
            code_verifier="v" * 43, now=NOW,
        )  # fmt: skip
