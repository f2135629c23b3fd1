"""Google People API: the signed-in user's contacts, one ``people.connections.list`` page at a time.

Every failure leaves this module as a ``contact_import.errors`` exception, never an httpx one.
Rate limits, 5xx and network errors are first retried a few times by ``providers.http``
(honouring ``Retry-After``), then raised for the runner to retry the job later. The access
token is sent in the ``Authorization`` header only and never appears in a message or a log line.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from contact_import.domain.contact import IncomingContact, PhoneInput
from contact_import.errors import (
    AccessTokenExpired,
    CursorExpired,
    InsufficientScope,
    MalformedResponse,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
    RequestRejected,
)
from contact_import.providers.base import ContactPage
from contact_import.providers.http import (
    RetryPolicy,
    get_with_retries,
    json_object,
    parse_retry_after,
)

__all__ = [
    "PERSON_FIELDS",
    "GoogleContactsSource",
    "error_for_response",
    "parse_connections",
    "person_to_contact",
]

PERSON_FIELDS = "names,emailAddresses,phoneNumbers,metadata"
MAX_PAGE_SIZE = 1000
_CONNECTIONS_PATH = "/v1/people/me/connections"
_API_NAME = "Google People API"
_SCOPE_MESSAGE = (
    "Google did not grant access to your contacts — "
    "reconnect your account and allow contacts access"
)
# Older Google APIs say "rate limit" with a 403 and one of these reasons instead of a 429.
_RATE_LIMIT_REASONS = frozenset(
    {"rateLimitExceeded", "userRateLimitExceeded", "RATE_LIMIT_EXCEEDED", "quotaExceeded"}
)
_SYNC_EXPIRED_REASON = "EXPIRED_SYNC_TOKEN"
_MAX_DETAIL = 200


class GoogleContactsSource:
    """A ``ContactSource`` over ``GET /v1/people/me/connections``."""

    def __init__(
        self,
        client: httpx.Client,
        *,
        api_url: str,
        access_token: str,
        page_size: int = MAX_PAGE_SIZE,
        max_retries: int = 3,
        max_retry_after: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
        self._client = client
        self._url = api_url.rstrip("/") + _CONNECTIONS_PATH
        self._headers = {"Authorization": f"Bearer {access_token}"}
        self._page_size = page_size
        self._policy = RetryPolicy(max_retries, max_retry_after, sleep)

    def __repr__(self) -> str:
        return f"GoogleContactsSource(url={self._url!r}, page_size={self._page_size})"

    def fetch_page(self, cursor: str | None) -> ContactPage:
        """Fetch the page at ``cursor`` (None: the first page)."""
        params = {"personFields": PERSON_FIELDS, "pageSize": str(self._page_size)}
        if cursor:
            params["pageToken"] = cursor
        response = get_with_retries(
            self._client,
            self._url,
            api_name=_API_NAME,
            headers=self._headers,
            error_for_response=error_for_response,
            policy=self._policy,
            params=params,
        )
        return parse_connections(json_object(response, _API_NAME))


# --- errors ------------------------------------------------------------------------------------


def error_for_response(response: httpx.Response, *, now: float) -> ProviderError:
    """The exception a non-2xx answer of the People API stands for."""
    status = response.status_code
    google_status, message, reasons = _google_error(response)
    if status == 429 or (status == 403 and reasons & _RATE_LIMIT_REASONS):
        retry_after = parse_retry_after(response.headers.get("Retry-After"), now=now)
        return RateLimited(f"Google rate limit reached (HTTP {status})", retry_after=retry_after)
    if status >= 500:
        return ProviderUnavailable(f"Google People API is unavailable (HTTP {status})")
    if 400 <= status < 500:
        return _client_error(status, google_status, message, reasons)
    return MalformedResponse(f"unexpected HTTP {status} from Google People API")


def _client_error(
    status: int, google_status: str, message: str, reasons: frozenset[str]
) -> ProviderError:
    if status == 401:
        return AccessTokenExpired("Google refused the access token (HTTP 401)")
    if status == 403:
        return InsufficientScope(_SCOPE_MESSAGE)
    if status == 410 or (status == 400 and _is_expired_sync_token(message, reasons)):
        return CursorExpired(f"Google no longer accepts this sync token (HTTP {status})")
    detail = f" {google_status}: {message[:_MAX_DETAIL]}" if google_status or message else ""
    return RequestRejected(f"Google rejected the request (HTTP {status}){detail}")


def _google_error(response: httpx.Response) -> tuple[str, str, frozenset[str]]:
    """(status, message, reasons) of Google's error body; empty values when it has none."""
    try:
        body = response.json()
    except ValueError:
        return "", "", frozenset()
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return "", "", frozenset()
    details = _dicts(error.get("details")) + _dicts(error.get("errors"))
    reasons = frozenset(str(detail["reason"]) for detail in details if "reason" in detail)
    return str(error.get("status") or ""), str(error.get("message") or ""), reasons


def _is_expired_sync_token(message: str, reasons: frozenset[str]) -> bool:
    return _SYNC_EXPIRED_REASON in reasons or _SYNC_EXPIRED_REASON in message


# --- Person -> IncomingContact -----------------------------------------------------------------


def parse_connections(body: dict[str, Any]) -> ContactPage:
    """The page a ``people.connections.list`` body describes."""
    connections = body.get("connections", [])
    if not isinstance(connections, list):
        raise MalformedResponse("Google People API sent 'connections' that is not a list")
    next_token = body.get("nextPageToken")
    return ContactPage(
        contacts=[person_to_contact(person) for person in connections],
        next_cursor=next_token if isinstance(next_token, str) and next_token else None,
        total=_total(body),
    )


def person_to_contact(person: object) -> IncomingContact:
    """One Person as an ``IncomingContact``; MalformedResponse when it has no resourceName."""
    resource_name = person.get("resourceName") if isinstance(person, dict) else None
    if not isinstance(person, dict) or not isinstance(resource_name, str) or not resource_name:
        raise MalformedResponse("Google People API sent a Person without a resourceName")
    metadata = person.get("metadata")
    return IncomingContact(
        provider_contact_id=resource_name,
        display_name=_display_name(_dicts(person.get("names"))),
        emails=_emails(_dicts(person.get("emailAddresses"))),
        phones=_phones(_dicts(person.get("phoneNumbers"))),
        deleted=isinstance(metadata, dict) and metadata.get("deleted") is True,
    )


def _display_name(names: list[dict[str, Any]]) -> str:
    if not names:
        return ""
    name = next((n for n in names if _is_primary(n)), names[0])
    display = _text(name.get("displayName"))
    if display:
        return display
    parts = (_text(name.get("givenName")), _text(name.get("familyName")))
    return " ".join(part for part in parts if part)


def _emails(fields: list[dict[str, Any]]) -> tuple[str, ...]:
    return tuple(value for field in fields if (value := _text(field.get("value"))))


def _phones(fields: list[dict[str, Any]]) -> tuple[PhoneInput, ...]:
    phones: list[PhoneInput] = []
    for field in fields:
        value, canonical = _text(field.get("value")), _text(field.get("canonicalForm"))
        if value or canonical:
            phones.append(PhoneInput(value or canonical, canonical or None))
    return tuple(phones)


def _total(body: dict[str, Any]) -> int | None:
    for key in ("totalItems", "totalPeople"):  # totalPeople is the deprecated spelling
        value = body.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def _is_primary(field: dict[str, Any]) -> bool:
    metadata = field.get("metadata")
    return isinstance(metadata, dict) and metadata.get("primary") is True


def _dicts(value: object) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""
