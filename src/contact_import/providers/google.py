"""Google People API: the signed-in user's contacts, one ``people.connections.list`` page at a time.

A full listing asks for a sync token (``requestSyncToken=true``): its last page carries
``nextSyncToken``, which a later source lists only the changes since with (``syncToken``; people
deleted since come back with ``metadata.deleted``). Google requires every page-token call to
repeat the parameters of the first call, sync token included, so the cursor of an incremental
listing carries both tokens (``{"syncToken": ..., "pageToken": ...}``); the cursor of a full
listing is the bare page token. An expired sync token or page token is ``CursorExpired``: list
again from the start.

Every failure leaves this module as a ``contact_import.errors`` exception, never an httpx one.
Rate limits, 5xx and network errors are first retried a few times by ``providers.http``
(honouring ``Retry-After``), then raised for the runner to retry the job later. The access
token is sent in the ``Authorization`` header only and never appears in a message or a log line.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import httpx

from contact_import.domain.contact import (
    IncomingContact,
    PhoneInput,
    StandInIds,
    unidentified_contact,
)
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
_SYNC_EXPIRED_MESSAGE = "sync token is expired"
# Google answers a page token it no longer honours (or never issued) with a 400 that names it;
# it cannot tell an expired one from a garbled one, and neither can we: both restart the listing.
_PAGE_TOKEN_MESSAGE = re.compile(r"page[ _]?token", re.IGNORECASE)
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
        sync_token: str | None = None,
    ) -> None:
        """``sync_token``: a ``nextSyncToken`` from an earlier listing; None lists everything."""
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
        self._client = client
        self._url = api_url.rstrip("/") + _CONNECTIONS_PATH
        self._headers = {"Authorization": f"Bearer {access_token}"}
        self._page_size = page_size
        self._policy = RetryPolicy(max_retries, max_retry_after, sleep)
        self._sync_token = sync_token or None

    def __repr__(self) -> str:
        mode = "incremental" if self._sync_token else "full"
        return f"GoogleContactsSource(url={self._url!r}, page_size={self._page_size}, {mode})"

    def fetch_page(self, cursor: str | None) -> ContactPage:
        """Fetch the page at ``cursor`` (None: the first page, of changes if given a sync token).

        A page of an incremental listing has no ``total``: Google does not document what
        ``totalItems`` counts in a sync.
        """
        position = _Position.from_cursor(cursor) if cursor else _Position(self._sync_token)
        response = get_with_retries(
            self._client,
            self._url,
            api_name=_API_NAME,
            headers=self._headers,
            error_for_response=error_for_response,
            policy=self._policy,
            params=position.params(self._page_size),
        )
        return position.next(parse_connections(json_object(response, _API_NAME)))


@dataclass(frozen=True, slots=True)
class _Position:
    """Where a listing is: its sync token (None: a full listing) and its page token."""

    sync_token: str | None
    page_token: str | None = None

    @classmethod
    def from_cursor(cls, cursor: str) -> _Position:
        """The position a ``cursor`` of ours describes."""
        if not cursor.startswith("{"):  # a Google page token is never JSON
            return cls(None, cursor)
        try:
            data = json.loads(cursor)
        except ValueError:
            data = None
        tokens = (data.get("syncToken"), data.get("pageToken")) if isinstance(data, dict) else ()
        if len(tokens) != 2 or not all(isinstance(token, str) and token for token in tokens):
            raise CursorExpired("the saved Google cursor is not one this adapter wrote")
        return cls(*tokens)

    def params(self, page_size: int) -> dict[str, str]:
        params = {
            "personFields": PERSON_FIELDS,
            "pageSize": str(page_size),
            "requestSyncToken": "true",  # the last page then carries nextSyncToken
        }
        if self.sync_token:
            params["syncToken"] = self.sync_token
        if self.page_token:
            params["pageToken"] = self.page_token
        return params

    def next(self, page: ContactPage) -> ContactPage:
        """``page`` with a cursor that resumes this listing (and no total if incremental)."""
        if not self.sync_token:
            return page
        cursor = page.next_cursor
        if cursor is not None:
            cursor = json.dumps({"syncToken": self.sync_token, "pageToken": cursor})
        return replace(page, next_cursor=cursor, total=None)


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
    if status == 400 and _PAGE_TOKEN_MESSAGE.search(message):
        return CursorExpired("Google no longer accepts this page token (HTTP 400)")
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
    if _SYNC_EXPIRED_REASON in reasons or _SYNC_EXPIRED_REASON in message:
        return True
    return _SYNC_EXPIRED_MESSAGE in message.lower()  # "Sync token is expired. Clear local…"


# --- Person -> IncomingContact -----------------------------------------------------------------


def parse_connections(body: dict[str, Any]) -> ContactPage:
    """The page a ``people.connections.list`` body describes."""
    connections = body.get("connections", [])
    if not isinstance(connections, list):
        raise MalformedResponse("Google People API sent 'connections' that is not a list")
    next_token = _token(body, "nextPageToken")
    stand_ins = StandInIds()
    return ContactPage(
        contacts=[person_to_contact(person, stand_ins) for person in connections],
        next_cursor=next_token,
        total=_total(body),
        sync_token=None if next_token else _token(body, "nextSyncToken"),  # the last page's only
    )


def person_to_contact(person: object, stand_ins: StandInIds | None = None) -> IncomingContact:
    """One Person as an ``IncomingContact``.

    A Person without a resourceName (or an entry that is no Person) fails alone: it gets a
    stand-in id from ``stand_ins`` (one per page) and a ``problem``.
    """
    if not isinstance(person, dict):
        return unidentified_contact(person, stand_ins, "Google sent an entry that is not a Person")
    resource_name = person.get("resourceName")
    if not isinstance(resource_name, str) or not resource_name:
        return unidentified_contact(
            person, stand_ins, "Google sent this Person without a resourceName"
        )
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


def _token(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise MalformedResponse(f"Google People API sent a '{key}' that is not a string")
    return value or None


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
