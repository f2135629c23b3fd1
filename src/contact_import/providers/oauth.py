"""OAuth 2.0 authorization code flow with PKCE (S256) against Google and the Microsoft identity
platform (v2.0).

The authorize URL and the PKCE pair come from Authlib; the two token requests are plain httpx
POSTs, translated into ``contact_import.errors`` through the same boundary and status skeleton
as the contacts APIs (``providers.http.map_httpx_errors``, ``providers.classify``):

    invalid_grant while exchanging a code   RequestRejected    the user starts connecting again
    invalid_grant while refreshing          AccessRevoked      access was revoked: reconnect
    invalid_client / unauthorized_client    ConfigError        our client id or secret is wrong
    429                                     RateLimited
    any other 4xx                           RequestRejected
    5xx, timeout, network error             ProviderUnavailable
    a 2xx that is not a token response      MalformedResponse

Google keeps its refresh token (a refresh answer usually has none: the old one stays); Microsoft
rotates it (every refresh answer has a new one, to be stored). No token, code, verifier or client
secret ever appears in a message or a log line.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import httpx
from authlib.common.security import generate_token
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from contact_import.errors import (
    AccessRevoked,
    ConfigError,
    ContactImportError,
    MalformedResponse,
    RequestRejected,
)
from contact_import.providers.classify import (
    ErrorBody,
    ErrorRules,
    classify_response,
    json_body,
)
from contact_import.providers.http import json_object, map_httpx_errors
from contact_import.providers.registry import (
    ProviderSpec,
    find_provider,
    provider_label,
    provider_spec,
)
from contact_import.settings import Settings

__all__ = [
    "OAuthProvider",
    "TokenSet",
    "authorization_url",
    "exchange_code",
    "new_pkce_verifier",
    "oauth_provider",
    "pkce_challenge",
    "refresh_access_token",
]

_VERIFIER_LENGTH = 64  # RFC 7636: 43 to 128 characters of [A-Za-z0-9-._~]
_ERROR_CODE = re.compile(r"[a-z_]{1,64}")  # only a well-formed OAuth error code goes in a message


@dataclass(frozen=True)
class OAuthProvider:
    """One provider's OAuth endpoints, our client registration there, and what we ask for."""

    name: str
    authorize_url: str
    token_url: str
    client_id: str
    client_secret: str = field(repr=False)
    scopes: tuple[str, ...]
    extra_authorize_params: Mapping[str, str] = field(default_factory=dict)
    # Microsoft wants the scopes again when refreshing; Google does not take them.
    scope_on_refresh: bool = False

    @property
    def label(self) -> str:
        """The provider's name as a user reads it ("Google")."""
        return provider_label(self.name)


@dataclass(frozen=True)
class TokenSet:
    """What a token endpoint granted. ``expires_at`` is None when it did not say."""

    access_token: str
    refresh_token: str | None
    expires_at: datetime | None
    scope: str | None

    def __repr__(self) -> str:
        refresh = "'***'" if self.refresh_token else "None"
        return (
            f"TokenSet(access_token='***', refresh_token={refresh}, "
            f"expires_at={self.expires_at!r}, scope={self.scope!r})"
        )

    def expires_within(self, now: datetime, margin: timedelta) -> bool:
        """True when the access token is expired or will be within ``margin`` of ``now``."""
        return self.expires_at is not None and self.expires_at - margin <= now


def oauth_provider(name: str, settings: Settings) -> OAuthProvider:
    """The OAuth configuration of provider ``name``; ConfigError when its client is not set.

    UnknownProvider when ``name`` is not in the registry.
    """
    spec = provider_spec(name)
    endpoints = spec.oauth_endpoints(settings)
    return OAuthProvider(
        name=spec.name,
        authorize_url=endpoints.authorize_url,
        token_url=endpoints.token_url,
        client_id=_required(spec, settings, "client_id"),
        client_secret=_required(spec, settings, "client_secret"),
        scopes=spec.scopes,
        extra_authorize_params=spec.extra_authorize_params,
        scope_on_refresh=spec.scope_on_refresh,
    )


def _required(spec: ProviderSpec, settings: Settings, setting: str) -> str:
    value = spec.setting(settings, setting)
    if value is None or not value.strip():
        raise ConfigError(f"{spec.env_var(setting)} is not set")
    return value.strip()


# --- the authorize step (pure) -----------------------------------------------------------------


def new_pkce_verifier() -> str:
    """A fresh PKCE code verifier (64 random characters)."""
    return str(generate_token(_VERIFIER_LENGTH))


def pkce_challenge(code_verifier: str) -> str:
    """The S256 code challenge of ``code_verifier``: BASE64URL(SHA256(verifier)), unpadded."""
    # types-authlib leaves this one unannotated
    return str(create_s256_code_challenge(code_verifier))  # type: ignore[no-untyped-call]


def authorization_url(
    provider: OAuthProvider,
    *,
    redirect_uri: str,
    state: str,
    code_verifier: str,
    login_hint: str | None = None,
) -> str:
    """Where to send the user's browser to grant us access to their contacts.

    ``login_hint`` pre-selects the account (an email address for the real providers).
    """
    return str(
        prepare_grant_uri(
            provider.authorize_url,
            provider.client_id,
            "code",
            redirect_uri=redirect_uri,
            scope=" ".join(provider.scopes),
            state=state,
            code_challenge=pkce_challenge(code_verifier),
            code_challenge_method="S256",
            login_hint=login_hint,  # None is left out
            **provider.extra_authorize_params,
        )
    )


# --- the token endpoint ------------------------------------------------------------------------


def exchange_code(
    client: httpx.Client,
    provider: OAuthProvider,
    *,
    code: str,
    redirect_uri: str,
    code_verifier: str,
    now: datetime,
) -> TokenSet:
    """Trade the code the callback received for tokens.

    A refused code (reused, expired, wrong verifier or redirect URI) is RequestRejected: the
    user has to start connecting again.
    """
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": code_verifier,
    }
    refused = RequestRejected(
        f"{provider.label} refused the authorization code — "
        f"start connecting your {provider.label} account again"
    )
    body = _token_request(client, provider, form, on_invalid_grant=refused)
    return _token_set(body, provider, now=now, previous_refresh_token=None)


def refresh_access_token(
    client: httpx.Client, provider: OAuthProvider, refresh_token: str, *, now: datetime
) -> TokenSet:
    """A new access token. The TokenSet keeps ``refresh_token`` unless the provider rotated it.

    AccessRevoked when the grant is no longer valid (the user revoked access, say).
    """
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    if provider.scope_on_refresh:
        form["scope"] = " ".join(provider.scopes)
    revoked = AccessRevoked(f"{provider.label} access was revoked — reconnect your account")
    body = _token_request(client, provider, form, on_invalid_grant=revoked)
    return _token_set(body, provider, now=now, previous_refresh_token=refresh_token)


def _token_request(
    client: httpx.Client,
    provider: OAuthProvider,
    form: dict[str, str],
    *,
    on_invalid_grant: ContactImportError,
) -> dict[str, object]:
    """POST ``form`` with our client credentials; the JSON body of a 2xx answer."""
    data = form | {"client_id": provider.client_id, "client_secret": provider.client_secret}
    rules = _token_error_rules(provider, on_invalid_grant)
    with map_httpx_errors(rules.api_name, bad_url=ConfigError):
        response = client.post(
            provider.token_url, data=data, headers={"Accept": "application/json"}
        )
    if not response.is_success:
        raise classify_response(response, rules, now=time.time())
    return json_object(response, rules.api_name)


def _token_error_rules(provider: OAuthProvider, on_invalid_grant: ContactImportError) -> ErrorRules:
    """How the token endpoint's errors read: RFC 6749 section 5.2 bodies, no bearer rules."""
    label, client_vars = provider.label, _client_env_vars(provider.name)

    def client_refusal(status: int, body: ErrorBody) -> ContactImportError | None:
        if "invalid_grant" in body.codes:
            return on_invalid_grant
        if body.codes & {"invalid_client", "unauthorized_client"}:
            return ConfigError(f"the {label} client id or secret is wrong (check {client_vars})")
        return None

    return ErrorRules(
        api_name=f"{label} sign-in",
        rate_limited=f"{label} sign-in rate limit reached (HTTP {{status}})",
        rejected=f"{label} refused the token request (HTTP {{status}}{{detail}})",
        read=_oauth_error,
        refusals=(client_refusal,),
    )


def _client_env_vars(provider_name: str) -> str:
    """Where our client id and secret for the provider are set, for a message."""
    spec = find_provider(provider_name)
    if spec is None:  # an OAuthProvider built by hand
        return "its client id and secret"
    return f"{spec.env_var('client_id')} and {spec.env_var('client_secret')}"


def _oauth_error(response: httpx.Response) -> ErrorBody:
    """The error code of an RFC 6749 error body, and a safe detail naming it; empty if absent.

    ``error_description`` is left out on purpose: servers may echo request values in it.
    """
    body = json_body(response)
    error = body.get("error")
    if not isinstance(error, str) or not _ERROR_CODE.fullmatch(error):
        return ErrorBody()
    codes = body.get("error_codes")  # Microsoft's AADSTS numbers
    first = codes[0] if isinstance(codes, list) and codes else None
    aadsts = f", AADSTS{first}" if isinstance(first, int) and not isinstance(first, bool) else ""
    return ErrorBody(frozenset({error}), detail=f" {error}{aadsts}")


def _token_set(
    body: dict[str, object],
    provider: OAuthProvider,
    *,
    now: datetime,
    previous_refresh_token: str | None,
) -> TokenSet:
    access_token = body.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        raise MalformedResponse(f"{provider.label} sent a token response without an access token")
    token_type = body.get("token_type")
    if isinstance(token_type, str) and token_type.lower() != "bearer":
        raise MalformedResponse(f"{provider.label} sent a token that is not a bearer token")
    refresh_token = body.get("refresh_token")
    scope = body.get("scope")
    expires_in = _seconds(body.get("expires_in"))
    return TokenSet(
        access_token=access_token,
        refresh_token=refresh_token
        if isinstance(refresh_token, str) and refresh_token
        else previous_refresh_token,
        expires_at=now + timedelta(seconds=expires_in) if expires_in is not None else None,
        scope=scope if isinstance(scope, str) else None,
    )


def _seconds(value: object) -> float | None:
    """``expires_in`` as seconds: a JSON number, or a numeric string (older Microsoft answers)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if value >= 0 else None
    if isinstance(value, str) and value.strip().isdigit():
        return float(value.strip())
    return None
