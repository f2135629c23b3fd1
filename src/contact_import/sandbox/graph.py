"""Microsoft Graph's ``GET /v1.0/me/contacts`` over the sandbox's books.

An account lists the same people under both APIs: each Graph contact is converted from the Google
Person of the same book (same names, emails and phones; the id is derived from the resourceName).
Paging is Graph's for Outlook resources: ``$top`` (default 10, at most 1000), and an absolute
``@odata.nextLink`` repeating the request's query with ``$skip``; ``$count=true`` adds
``@odata.count``; ``$select`` picks properties (``id`` and ``@odata.etag`` always come along).
Authentication and the fault knobs are the sandbox's shared ones (``state.admit``); only
``empty_page_every`` is Graph's own.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from contact_import.sandbox.dirty import has_no_id
from contact_import.sandbox.folder_tree import ROOT_ID
from contact_import.sandbox.listing import Listing, listing_people, query_boolean
from contact_import.sandbox.state import Admitted, WireJSONResponse

__all__ = [
    "CONTACTS_PATH",
    "BadQuery",
    "ContactsQuery",
    "GraphErrors",
    "graph_contact_id",
    "graph_error",
    "integer_option",
    "list_contacts",
    "parse_select",
    "selected",
    "skip_link",
    "to_graph_contact",
]

CONTACTS_PATH = "/v1.0/me/contacts"
DEFAULT_TOP = 10
MAX_TOP = 1000
SERVED_FIELDS = (
    "id", "displayName", "givenName", "surname", "emailAddresses", "businessPhones",
    "homePhones", "mobilePhone",
)  # fmt: skip
# Every property of Graph's contact resource; the ones the sandbox holds no data for are null.
_CONTACT_PROPERTIES = frozenset(SERVED_FIELDS) | {
    "assistantName", "birthday", "businessAddress", "businessHomePage", "categories",
    "changeKey", "children", "companyName", "createdDateTime", "department", "fileAs",
    "generation", "homeAddress", "imAddresses", "initials", "jobTitle", "lastModifiedDateTime",
    "manager", "middleName", "nickName", "officeLocation", "otherAddress", "parentFolderId",
    "personalNotes", "profession", "spouseName", "title", "yomiCompanyName", "yomiGivenName",
    "yomiSurname",
}  # fmt: skip
_PROPERTY_BY_LOWER = {name.lower(): name for name in _CONTACT_PROPERTIES}
_WWW_AUTHENTICATE = {
    "WWW-Authenticate": 'Bearer realm="", authorization_uri='
    '"https://login.microsoftonline.com/common/oauth2/authorize", '
    'client_id="00000003-0000-0000-c000-000000000000"'
}


async def list_contacts(request: Request, admitted: Admitted) -> Response:
    """``GET /me/contacts``, for a request ``state.admit`` let through."""
    try:
        query = ContactsQuery.parse(request.query_params)
    except BadQuery as exc:
        return graph_error(400, exc.code, str(exc))
    stall = admitted.fires(admitted.account.faults.empty_page_every)
    people = await listing_people(admitted, Listing(admitted.account.changes.version))
    # /me/contacts is the default Contacts folder only
    people = admitted.account.folders.filed_in(people, ROOT_ID)
    page = _contacts_page(people, query, request, admitted.account.id, stall=stall)
    return WireJSONResponse(page)


# --- the query -----------------------------------------------------------------------------------


class BadQuery(Exception):
    """A query Graph would refuse with 400; ``code`` is Graph's error code for it."""

    def __init__(self, message: str, code: str = "BadRequest") -> None:
        super().__init__(message)
        self.code = code


def _bad_value(name: str, text: str) -> BadQuery:
    return BadQuery(f"Invalid {name} value: '{text}'.")


@dataclass(frozen=True, slots=True)
class ContactsQuery:
    """The OData options of one ``GET /me/contacts``; ``select`` empty means every property."""

    top: int = DEFAULT_TOP
    skip: int = 0
    select: tuple[str, ...] = ()
    count: bool = False

    @classmethod
    def parse(cls, params: QueryParams) -> ContactsQuery:
        """Read ``$top``, ``$skip``, ``$select`` and ``$count``; BadQuery names what is wrong."""
        return cls(
            top=integer_option(params, "$top", DEFAULT_TOP, low=1, high=MAX_TOP),
            skip=integer_option(params, "$skip", 0, low=0, high=None),
            select=parse_select(params.get("$select", "")),
            count=query_boolean(params, "$count", _bad_value),
        )


def integer_option(
    params: QueryParams, name: str, default: int, *, low: int, high: int | None
) -> int:
    text = params.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise _bad_value(name, text) from None
    if value < low or (high is not None and value > high):
        limit = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise BadQuery(f"The {name} value must be {limit}.")
    return value


def parse_select(text: str) -> tuple[str, ...]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    for name in names:
        if name.lower() not in _PROPERTY_BY_LOWER:
            message = f"Could not find a property named '{name}' on type 'microsoft.graph.contact'."
            raise BadQuery(message, "RequestBroker--ParseUri")
    return tuple(dict.fromkeys(_PROPERTY_BY_LOWER[name.lower()] for name in names))


# --- the page ------------------------------------------------------------------------------------


def _contacts_page(
    people: list[dict[str, Any]],
    query: ContactsQuery,
    request: Request,
    user_id: str,
    *,
    stall: bool = False,
) -> dict[str, Any]:
    """The response body; ``stall``: an empty page whose next link is this very position."""
    end = query.skip if stall else min(query.skip + query.top, len(people))
    context = f"{request.base_url}v1.0/$metadata#users('{user_id}')/contacts"
    body: dict[str, Any] = {
        "@odata.context": context + (f"({','.join(query.select)})" if query.select else "")
    }
    if query.count:
        body["@odata.count"] = len(people)
    body["value"] = [selected(to_graph_contact(p), query.select) for p in people[query.skip : end]]
    if stall or end < len(people):
        body["@odata.nextLink"] = skip_link(request, end)
    return body


def skip_link(request: Request, skip: int) -> str:
    """This request's absolute URL with ``$skip`` set, encoded the way Graph's own links are."""
    pairs = [(k, v) for k, v in request.query_params.multi_items() if k != "$skip"]
    return str(request.url.replace(query=urlencode([*pairs, ("$skip", str(skip))])))


def selected(contact: dict[str, Any], select: tuple[str, ...]) -> dict[str, Any]:
    if not select:
        return contact
    kept = {key: contact[key] for key in ("@odata.etag", "id") if key in contact}
    return kept | {name: contact.get(name) for name in select}


# --- Google Person -> Graph contact ------------------------------------------------------------


def graph_contact_id(resource_name: str) -> str:
    """A stable, opaque, Outlook-looking id for the Person ``resource_name``."""
    return "AAMk" + hashlib.sha256(resource_name.encode()).hexdigest()[:40]


def to_graph_contact(person: dict[str, Any]) -> dict[str, Any]:
    """The Graph contact a sandbox Person stands for (every served property present, and
    its id unless the Person is a ``dirty`` one without)."""
    names = person.get("names") or [{}]
    name = names[0]
    display = str(name.get("displayName", ""))
    emails = [str(e["value"]) for e in person.get("emailAddresses", []) if e.get("value")]
    change_key = _change_key(str(person.get("etag", person["resourceName"])))
    contact: dict[str, Any] = {"@odata.etag": f'W/"{change_key}"'}
    if not has_no_id(person):
        contact["id"] = graph_contact_id(person["resourceName"])
    return contact | {
        "displayName": display,
        "givenName": name.get("givenName") or None,
        "surname": name.get("familyName") or None,
        "emailAddresses": [{"name": display or address, "address": address} for address in emails],
        **_phones(person.get("phoneNumbers", [])),
        "changeKey": change_key,
    }


def _phones(fields: list[dict[str, Any]]) -> dict[str, Any]:
    """Google's typed phones as Graph's three slots: one mobile, business and home lists."""
    business: list[str] = []
    home: list[str] = []
    mobile: str | None = None
    for field in fields:
        value, kind = field.get("value"), field.get("type")
        if not value:
            continue
        if kind == "work":
            business.append(value)
        elif kind == "mobile" and mobile is None:
            mobile = value
        else:
            home.append(value)
    return {"businessPhones": business, "homePhones": home, "mobilePhone": mobile}


def _change_key(google_etag: str) -> str:
    """Graph's ``changeKey`` (base64, new on every change: it follows the Person's etag);
    ``@odata.etag`` is the same value as a weak entity tag, ``W/"<changeKey>"``."""
    digest = hashlib.sha256(google_etag.encode()).digest()[:18]
    return "EQAAABYAAA" + base64.b64encode(digest).decode()


# --- errors --------------------------------------------------------------------------------------


class GraphErrors:
    """The sandbox's shared faults, answered as Graph answers them."""

    def unauthenticated(self) -> Response:
        message = "Access token validation failure. Invalid audience."
        return graph_error(401, "InvalidAuthenticationToken", message, _WWW_AUTHENTICATE)

    def unavailable(self) -> Response:
        return graph_error(503, "serviceNotAvailable", "The service is temporarily unavailable.")

    def rate_limited(self, retry_after: int) -> Response:
        message = "Application is over its MailboxConcurrency limit."
        headers = {"Retry-After": str(retry_after)}
        return graph_error(429, "ApplicationThrottled", message, headers)


def graph_error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """Graph's error body: ``{"error": {"code", "message", "innerError": {...}}}``."""
    inner = {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
        "request-id": str(uuid.uuid4()),
        "client-request-id": str(uuid.uuid4()),
    }
    body = {"error": {"code": code, "message": message, "innerError": inner}}
    return JSONResponse(body, status_code=status, headers=headers)
