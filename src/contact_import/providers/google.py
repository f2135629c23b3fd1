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
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

from contact_import.domain.contact import (
    IncomingContact,
    PhoneInput,
    StandInIds,
    unidentified_contact,
)
from contact_import.errors import CursorExpired, MalformedResponse
from contact_import.providers.api_source import ApiContactSource
from contact_import.providers.base import ContactPage
from contact_import.providers.classify import ErrorBody
from contact_import.providers.wire import dicts, text

__all__ = [
    "PERSON_FIELDS",
    "GoogleContactsSource",
    "error_for_response",
    "parse_connections",
    "person_to_contact",
]

PERSON_FIELDS = "names,emailAddresses,phoneNumbers,metadata"
# Older Google APIs say "rate limit" with a 403 and one of these reasons instead of a 429.
_RATE_LIMIT_REASONS = frozenset(
    {"rateLimitExceeded", "userRateLimitExceeded", "RATE_LIMIT_EXCEEDED", "quotaExceeded"}
)
_SYNC_EXPIRED_REASON = "EXPIRED_SYNC_TOKEN"
_SYNC_EXPIRED_MESSAGE = "sync token is expired"
# Google answers a page token it no longer honours (or never issued) with a 400 that names it;
# it cannot tell an expired one from a garbled one, and neither can we: both restart the listing.
_PAGE_TOKEN_MESSAGE = re.compile(r"page[ _]?token", re.IGNORECASE)


class GoogleContactsSource(ApiContactSource):
    """A ``ContactSource`` over ``GET /v1/people/me/connections``.

    ``sync_token``: a ``nextSyncToken`` from an earlier listing; None lists everything.
    """

    label = "Google"
    api_name = "Google People API"
    path = "/v1/people/me/connections"
    error_code_key = "status"  # "INVALID_ARGUMENT"; its "code" is the HTTP status again

    def fetch_page(self, cursor: str | None) -> ContactPage:
        """Fetch the page at ``cursor`` (None: the first page, of changes if given a sync token).

        A page of an incremental listing has no ``total``: Google does not document what
        ``totalItems`` counts in a sync.
        """
        position = _Position.from_cursor(cursor) if cursor else _Position(self._sync_token)
        body = self._get_json(self._url, position.params(self._page_size))
        return position.next(parse_connections(body))

    @staticmethod
    def error_codes(error: dict[str, Any]) -> Iterator[str]:
        """The reasons of the error's ``details`` (and of the older ``errors``)."""
        for detail in dicts(error.get("details")) + dicts(error.get("errors")):
            if "reason" in detail:
                yield str(detail["reason"])

    @staticmethod
    def throttled(status: int, body: ErrorBody) -> bool:
        return status == 403 and bool(body.codes & _RATE_LIMIT_REASONS)

    @staticmethod
    def refused(status: int, body: ErrorBody) -> CursorExpired | None:
        if status == 410 or (status == 400 and _is_expired_sync_token(body)):
            return CursorExpired(f"Google no longer accepts this sync token (HTTP {status})")
        if status == 400 and _PAGE_TOKEN_MESSAGE.search(body.message):
            return CursorExpired("Google no longer accepts this page token (HTTP 400)")
        return None


error_for_response = GoogleContactsSource.error_for_response


def _is_expired_sync_token(body: ErrorBody) -> bool:
    if _SYNC_EXPIRED_REASON in body.codes or _SYNC_EXPIRED_REASON in body.message:
        return True
    return _SYNC_EXPIRED_MESSAGE in body.message.lower()  # "Sync token is expired. Clear local…"


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
        display_name=_display_name(dicts(person.get("names"))),
        emails=_emails(dicts(person.get("emailAddresses"))),
        phones=_phones(dicts(person.get("phoneNumbers"))),
        deleted=isinstance(metadata, dict) and metadata.get("deleted") is True,
        version=text(person.get("etag")) or None,  # sent whatever personFields asks for
    )


def _display_name(names: list[dict[str, Any]]) -> str:
    if not names:
        return ""
    name = next((n for n in names if _is_primary(n)), names[0])
    display = text(name.get("displayName"))
    if display:
        return display
    parts = (text(name.get("givenName")), text(name.get("familyName")))
    return " ".join(part for part in parts if part)


def _emails(fields: list[dict[str, Any]]) -> tuple[str, ...]:
    return tuple(value for field in fields if (value := text(field.get("value"))))


def _phones(fields: list[dict[str, Any]]) -> tuple[PhoneInput, ...]:
    phones: list[PhoneInput] = []
    for field in fields:
        value, canonical = text(field.get("value")), text(field.get("canonicalForm"))
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


def account_email_of(person: dict[str, Any]) -> str | None:
    """``people/me``'s email: the primary address, else the first one."""
    addresses = person.get("emailAddresses")
    fields = [f for f in addresses if isinstance(f, dict)] if isinstance(addresses, list) else []
    fields.sort(key=lambda f: not _is_primary(f))
    values = [f.get("value") for f in fields]
    return next((v for v in values if isinstance(v, str) and v), None)
