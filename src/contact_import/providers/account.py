"""Who a grant belongs to, and ending a grant at the provider: the account's email (read once,
when the grant is stored) and token revocation (when the user disconnects).

Google: ``GET /v1/people/me?personFields=emailAddresses`` on the People API (the account's
addresses come back only when the token's scopes allow it: ``email``,
``userinfo.email`` or ``user.emails.read``; a token from "Sign in with Google" has them, our
own contacts-only consent may not); revocation is ``POST https://oauth2.googleapis.com/revoke``
with ``token=`` (``GOOGLE_REVOKE_URL``), which ends the refresh token and its access tokens.

Microsoft Graph: ``GET /v1.0/me?$select=mail,userPrincipalName`` (``mail``, else the
sign-in name; Graph answers it with ``User.Read``); the identity platform has no endpoint that
revokes one refresh token of an authorization-code grant, so a disconnect only forgets them.

Both are best effort: neither ever fails the grant or the disconnect. No token appears in a
message or a log line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from contact_import.errors import ContactImportError
from contact_import.providers.api_source import ApiContactSource
from contact_import.providers.http import RetryPolicy, get_with_retries, json_object

__all__ = ["AccountProfile", "fetch_account_email", "revoke_token"]

log = logging.getLogger("contact_import.providers")

_MAX_EMAIL = 320  # RFC 5321's longest address: anything longer is not one
_REVOKE_TIMEOUT = 10.0


@dataclass(frozen=True)
class AccountProfile:
    """Where a provider says who the token's account is, and how to read its email there."""

    path: str  # below the contacts API's base URL
    email_of: Callable[[dict[str, Any]], str | None]
    params: Mapping[str, str] = field(default_factory=dict)


def fetch_account_email(
    client: httpx.Client,
    source: type[ApiContactSource],
    profile: AccountProfile,
    *,
    api_url: str,
    access_token: str,
) -> str | None:
    """The account's email, or None when the provider does not tell it (scopes, an error)."""
    try:
        response = get_with_retries(
            client,
            api_url.rstrip("/") + profile.path,
            api_name=source.api_name,
            headers={"Authorization": f"Bearer {access_token}"},
            error_for_response=source.error_for_response,
            policy=RetryPolicy(max_retries=1, max_retry_after=2.0),
            params=profile.params,
        )
        email = profile.email_of(json_object(response, source.api_name))
    except ContactImportError as exc:
        log.info("the account's email is unknown: %s", exc, extra={"provider": source.label})
        return None
    if email is None or not 0 < len(email.strip()) <= _MAX_EMAIL:
        return None
    return email.strip()


def revoke_token(client: httpx.Client, revoke_url: str, token: str) -> bool:
    """Revoke ``token`` at an RFC 7009-style endpoint (Google's); True when the provider
    confirmed it, or answered that the token is no longer valid anyway (``invalid_token``).
    False on anything else: 5xx, a timeout, a network error."""
    try:
        response = client.post(
            revoke_url,
            data={"token": token},
            headers={"Accept": "application/json"},
            timeout=_REVOKE_TIMEOUT,
            follow_redirects=False,
        )
    except httpx.HTTPError as exc:
        log.warning("token revocation failed: %s", type(exc).__name__)
        return False
    if response.is_success:
        return True
    if response.status_code == 400 and _error_code(response) == "invalid_token":
        return True  # already revoked or expired: nothing is left to end
    log.warning("token revocation refused (HTTP %d)", response.status_code)
    return False


def _error_code(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, str) else None
