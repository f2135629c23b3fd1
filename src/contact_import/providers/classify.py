"""Which exception a provider's non-2xx answer stands for: one skeleton, each API's body rules.

``classify_response`` is the same for every HTTP API we call, the contacts APIs and the OAuth
token endpoints alike; an ``ErrorRules`` holds what differs: how the API's error body reads,
what else it calls throttling, and which 4xx answers mean something particular. In order:

    429, or what the API's body calls throttling   RateLimited, with Retry-After
    5xx                                            ProviderUnavailable
    a 4xx one of the API's refusals recognises     its error (CursorExpired, AccessRevoked, …)
    any other 4xx                                  RequestRejected, with a short safe detail
    anything else that is not a 2xx (1xx, 3xx)     MalformedResponse

A contacts API (``api_rules``) refuses with the bearer rules first: 401 means the access token
needs refreshing (AccessTokenExpired), 403 that the grant lacks the contacts scope
(InsufficientScope). A token endpoint has no bearer token, so its rules do without them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any

import httpx

from contact_import.errors import (
    AccessTokenExpired,
    ContactImportError,
    InsufficientScope,
    MalformedResponse,
    ProviderUnavailable,
    RateLimited,
    RequestRejected,
)
from contact_import.providers.http import parse_retry_after
from contact_import.providers.wire import text

__all__ = [
    "MAX_DETAIL",
    "ErrorBody",
    "ErrorRules",
    "Refusal",
    "api_rules",
    "classify_response",
    "json_body",
    "safe_detail",
]

MAX_DETAIL = 200  # characters of a provider's own error message kept in ours


@dataclass(frozen=True, slots=True)
class ErrorBody:
    """What an error body says: the codes or reasons it names, its message, a detail for ours.

    ``detail`` is appended to a RequestRejected message, so a reader builds it only from
    what cannot hold a secret (codes, the provider's own message cut short), never from
    request values a server may echo.
    """

    codes: frozenset[str] = frozenset()
    message: str = ""
    detail: str = ""


# A rule for 4xx answers: the error this (status, body) stands for, or None when not its case.
Refusal = Callable[[int, ErrorBody], ContactImportError | None]


def _never_throttled(status: int, body: ErrorBody) -> bool:
    return False


@dataclass(frozen=True, slots=True)
class ErrorRules:
    """How one API says what went wrong; the module docstring has the order they apply in."""

    api_name: str  # as in "Google People API is unavailable (HTTP 503)"
    rate_limited: str  # the RateLimited message; {status} is filled in
    rejected: str  # the RequestRejected message; {status} and {detail} are filled in
    read: Callable[[httpx.Response], ErrorBody]
    throttled: Callable[[int, ErrorBody], bool] = _never_throttled
    refusals: tuple[Refusal, ...] = ()


def classify_response(
    response: httpx.Response, rules: ErrorRules, *, now: float
) -> ContactImportError:
    """The exception a non-2xx ``response`` stands for; ``now`` dates a Retry-After."""
    status, body = response.status_code, rules.read(response)
    if status == 429 or rules.throttled(status, body):
        retry_after = parse_retry_after(response.headers.get("Retry-After"), now=now)
        return RateLimited(rules.rate_limited.format(status=status), retry_after=retry_after)
    if status >= 500:
        return ProviderUnavailable(f"{rules.api_name} is unavailable (HTTP {status})")
    if not 400 <= status < 500:
        return MalformedResponse(f"unexpected HTTP {status} from {rules.api_name}")
    for refusal in rules.refusals:
        if (error := refusal(status, body)) is not None:
            return error
    return RequestRejected(rules.rejected.format(status=status, detail=body.detail))


def api_rules(
    label: str,
    api_name: str,
    *,
    code_key: str,
    codes: Callable[[dict[str, Any]], Iterable[str]],
    throttled: Callable[[int, ErrorBody], bool] = _never_throttled,
    refusals: tuple[Refusal, ...] = (),
) -> ErrorRules:
    """The rules of a contacts API called with a bearer token: 401 and 403, then ``refusals``.

    Both APIs answer ``{"error": {code_key: ..., "message": ..., ...}}``; ``codes`` finds
    what the ``error`` object names besides (Google's reasons, Graph's innerError codes).
    """
    return ErrorRules(
        api_name=api_name,
        rate_limited=f"{label} rate limit reached (HTTP {{status}})",
        rejected=f"{label} rejected the request (HTTP {{status}}){{detail}}",
        read=partial(_api_error_body, code_key=code_key, codes=codes),
        throttled=throttled,
        refusals=(_bearer_refusal(label), *refusals),
    )


def _api_error_body(
    response: httpx.Response, *, code_key: str, codes: Callable[[dict[str, Any]], Iterable[str]]
) -> ErrorBody:
    error = json_body(response).get("error")
    if not isinstance(error, dict):
        return ErrorBody()
    code, message = text(error.get(code_key)), text(error.get("message"))
    return ErrorBody(frozenset(codes(error)), message, safe_detail(code, message))


def _bearer_refusal(label: str) -> Refusal:
    scope_message = (
        f"{label} did not grant access to your contacts — "
        "reconnect your account and allow contacts access"
    )

    def refusal(status: int, body: ErrorBody) -> ContactImportError | None:
        if status == 401:
            return AccessTokenExpired(f"{label} refused the access token (HTTP 401)")
        return InsufficientScope(scope_message) if status == 403 else None

    return refusal


def json_body(response: httpx.Response) -> dict[str, Any]:
    """An error answer's body when it is a JSON object; {} for anything else."""
    try:
        body = response.json()
    except ValueError:  # not JSON, or not UTF-8
        return {}
    return body if isinstance(body, dict) else {}


def safe_detail(code: str, message: str) -> str:
    """``" CODE: message"`` for a RequestRejected message, the message cut short; "" if neither."""
    return f" {code}: {message[:MAX_DETAIL]}" if code or message else ""
