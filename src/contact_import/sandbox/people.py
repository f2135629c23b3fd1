"""Google People API's ``people.connections.list`` over the sandbox's books, with sync tokens.

As Google documents it: ``personFields`` is required; ``pageSize`` 1-1000 (default 100); a page
token is valid only with every other parameter of the call that produced it, ``syncToken``
included; ``requestSyncToken=true`` puts a ``nextSyncToken`` on the last page; ``syncToken=T``
lists only the people changed since T, the deleted ones as a Person with ``metadata.deleted``;
a sync token the server no longer has answers 400 with the ErrorInfo reason
``EXPIRED_SYNC_TOKEN``. Authentication and the shared faults are ``state.admit``'s; the listing
faults (expired tokens, truncated pages) are ``listing``'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from contact_import.sandbox.accounts import Account
from contact_import.sandbox.changes import is_tombstone
from contact_import.sandbox.dirty import wire_person
from contact_import.sandbox.listing import (
    Listing,
    listing_people,
    listing_token,
    malformed_answer,
    page_token_expires,
    query_boolean,
    read_listing_token,
)
from contact_import.sandbox.state import Admitted, Book, wire_json

__all__ = ["CONNECTIONS_PATH", "GoogleErrors", "list_connections"]

CONNECTIONS_PATH = "/v1/people/me/connections"
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000

# What the sandbox's Persons carry; a mask asking for all of them is served without copying.
_SERVED_FIELDS = frozenset({"names", "emailAddresses", "phoneNumbers", "metadata"})
# Every path Google accepts in personFields (we hold data for the four above only).
_VALID_PERSON_FIELDS = _SERVED_FIELDS | {
    "addresses", "ageRanges", "biographies", "birthdays", "calendarUrls", "clientData",
    "coverPhotos", "events", "externalIds", "genders", "imClients", "interests", "locales",
    "locations", "memberships", "miscKeywords", "nicknames", "occupations", "organizations",
    "photos", "relations", "sipAddresses", "skills", "urls", "userDefined",
}  # fmt: skip
_SORT_ORDERS = frozenset(
    {"LAST_MODIFIED_ASCENDING", "LAST_MODIFIED_DESCENDING", "FIRST_NAME_ASCENDING",
     "LAST_NAME_ASCENDING"}
)  # fmt: skip
_UNAUTHENTICATED = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie "
    "or other valid authentication credential. "
    "See https://developers.google.com/identity/sign-in/web/devconsole-project."
)
_WWW_AUTHENTICATE = {"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'}
_MASK_REQUIRED = (
    "personFields mask is required. Please specify one or more valid paths. Valid paths are "
    "documented at https://developers.google.com/people/api/rest/v1/people.connections/list."
)
_BAD_PAGE_TOKEN = "Request contains an invalid argument: the page token is not valid."  # noqa: S105
_EXPIRED_SYNC_TOKEN = (
    "Sync token is expired. Clear local cache and retry call without the sync token."  # noqa: S105
)
_QUOTA_EXCEEDED = (
    "Quota exceeded for quota metric 'Read requests' and limit 'Read requests per minute per "
    "user' of service 'people.googleapis.com'."
)


async def list_connections(request: Request, admitted: Admitted) -> Response:
    """``people.connections.list``, for a request ``state.admit`` let through."""
    try:
        query = ConnectionsQuery.parse(request.query_params)
        listing = _listing(query, admitted)
    except _Refused as refused:
        return refused.answer()
    people = await listing_people(admitted, listing)
    body = _connections_page(people, await admitted.book(), query, listing, admitted.account)
    malformed = malformed_answer(admitted, body)
    return malformed or Response(body, media_type="application/json")


class GoogleErrors:
    """The sandbox's shared faults, answered as Google answers them."""

    def unauthenticated(self) -> Response:
        return google_error(401, "UNAUTHENTICATED", _UNAUTHENTICATED, _WWW_AUTHENTICATE)

    def unavailable(self) -> Response:
        return google_error(503, "UNAVAILABLE", "The service is currently unavailable.")

    def rate_limited(self, retry_after: int) -> Response:
        headers = {"Retry-After": str(retry_after)}
        return google_error(429, "RESOURCE_EXHAUSTED", _QUOTA_EXCEEDED, headers)


def google_error(
    code: int,
    status: str,
    message: str,
    headers: dict[str, str] | None = None,
    reason: str = "",
) -> JSONResponse:
    """Google's error body; ``reason`` adds the ``google.rpc.ErrorInfo`` detail."""
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if reason:
        info = "type.googleapis.com/google.rpc.ErrorInfo"
        error["details"] = [{"@type": info, "reason": reason, "domain": "people.googleapis.com"}]
    return JSONResponse({"error": error}, status_code=code, headers=headers)


class _Refused(Exception):
    """A request Google answers with a 400."""

    def __init__(self, message: str, status: str = "INVALID_ARGUMENT", reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason

    def answer(self) -> Response:
        return google_error(400, self.status, str(self), reason=self.reason)


def _bad_boolean(name: str, text: str) -> _Refused:
    return _Refused(f"Invalid value at '{name}' (TYPE_BOOL), \"{text}\"")


# --- the query -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConnectionsQuery:
    """The parameters of one ``people.connections.list`` call."""

    person_fields: frozenset[str]
    page_size: int
    sort_order: str
    request_sync_token: bool
    sync_token: str
    page_token: str

    @classmethod
    def parse(cls, params: QueryParams) -> ConnectionsQuery:
        """Read and check the parameters; _Refused names what Google would refuse."""
        return cls(
            person_fields=_person_fields(params.get("personFields", "")),
            page_size=_page_size(params.get("pageSize", "")),
            sort_order=_sort_order(params.get("sortOrder", "")),
            request_sync_token=query_boolean(params, "requestSyncToken", _bad_boolean),
            sync_token=params.get("syncToken", ""),
            page_token=params.get("pageToken", ""),
        )

    def binding(self) -> str:
        """What a page token is bound to: "all other parameters must match the first call"."""
        return "|".join(
            (str(self.page_size), ",".join(sorted(self.person_fields)), self.sort_order,
             str(self.request_sync_token), self.sync_token)
        )  # fmt: skip


def _listing(query: ConnectionsQuery, admitted: Admitted) -> Listing:
    account = admitted.account
    start = _sync_start(query.sync_token, account) if query.sync_token else None
    if not query.page_token:
        return start or Listing(account.changes.version)
    if page_token_expires(admitted):
        raise _Refused(_BAD_PAGE_TOKEN)
    listing = read_listing_token(query.page_token, account, "page", query.binding())
    if listing is None or listing.offset <= 0:
        raise _Refused(_BAD_PAGE_TOKEN)
    return listing


def _sync_start(sync_token: str, account: Account) -> Listing:
    """The changes since ``sync_token``; an unknown token is as gone as an expired one."""
    previous = read_listing_token(sync_token, account, "sync")
    if previous is None or account.faults.expire_sync_tokens:
        raise _Refused(_EXPIRED_SYNC_TOKEN, "FAILED_PRECONDITION", "EXPIRED_SYNC_TOKEN")
    return previous.changes_since_this(account)


def _person_fields(mask: str) -> frozenset[str]:
    paths = frozenset(path.strip() for path in mask.split(",") if path.strip())
    if not paths:
        raise _Refused(_MASK_REQUIRED)
    unknown = sorted(paths - _VALID_PERSON_FIELDS)
    if unknown:
        raise _Refused(f'Invalid personFields mask path: "{unknown[0]}". {_MASK_REQUIRED}')
    return paths


def _page_size(text: str) -> int:
    try:
        size = int(text) if text else 0
    except ValueError:
        raise _Refused(f"Invalid value at 'page_size' (TYPE_INT32), \"{text}\"") from None
    if not 0 <= size <= MAX_PAGE_SIZE:
        raise _Refused("Page size must be between 1 and 1000.")
    return size or DEFAULT_PAGE_SIZE  # 0 means "unset", as for Google


def _sort_order(text: str) -> str:
    if text and text not in _SORT_ORDERS:
        raise _Refused(f"Invalid value at 'sort_order', \"{text}\"")
    return text or "LAST_MODIFIED_ASCENDING"


# --- the page ------------------------------------------------------------------------------------


def _connections_page(
    people: list[dict[str, Any]],
    book: Book,
    query: ConnectionsQuery,
    listing: Listing,
    account: Account,
) -> bytes:
    """The response body, assembled from encoded Persons (a ``dict`` would re-encode them)."""
    start, end, next_offset = listing.page_bounds(query.page_size, len(people))
    members: list[bytes] = []
    if end > start:
        encoded = _people_json(people, book, query.person_fields, start, end)
        members.append(b'"connections":[' + b",".join(encoded) + b"]")
    if next_offset is not None:
        token = listing_token(account, "page", listing.at(next_offset), query.binding())
        members.append(b'"nextPageToken":' + wire_json(token))
    elif query.request_sync_token:
        token = listing_token(account, "sync", Listing(listing.version))
        members.append(b'"nextSyncToken":' + wire_json(token))
    members.append(b'"totalPeople":%d,"totalItems":%d' % (len(people), len(people)))
    return b"{" + b",".join(members) + b"}"


def _people_json(
    people: list[dict[str, Any]], book: Book, fields: frozenset[str], start: int, end: int
) -> list[bytes]:
    if people is book.people and fields >= _SERVED_FIELDS:
        return book.people_json(start, end)  # encoded once per book, shared by its listings
    keep = fields | {"resourceName", "etag"}
    return [wire_json(_masked(wire_person(person), keep)) for person in people[start:end]]


def _masked(person: dict[str, Any], keep: frozenset[str]) -> dict[str, Any]:
    if is_tombstone(person):
        return person  # resourceName, etag and metadata.deleted, whatever the mask
    return {key: value for key, value in person.items() if key in keep}
