"""Microsoft Graph's contact delta, ``GET /v1.0/me/contactFolders/{id}/contacts/delta``.

As Graph documents change tracking for Outlook contacts: the first request may ``$select``
properties, and Graph encodes them in the ``$skiptoken`` of each ``@odata.nextLink`` and the
``$deltatoken`` of the final ``@odata.deltaLink``, which the client follows verbatim; the page
size is asked for with ``Prefer: odata.maxpagesize=N`` (``$top``, ``$count`` and the other query
options are refused); a page may be empty and still have a next link; the first round lists
every contact, a round started from a delta link only what changed since, a deleted contact as
``{"id", "@removed": {"reason": "deleted"}}``; a token the service no longer has answers 410.
The folder is the well-known ``contacts`` (the default Contacts folder, what ``/me/contacts``
lists) or any folder's id (``graph_folders``); a round lists the people filed in that folder
(``folder_tree``), and its tokens are valid for that folder only. An unknown or deleted folder
answers 404 ``ErrorItemNotFound``, whatever the token.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response

from contact_import.sandbox.accounts import Account
from contact_import.sandbox.changes import is_tombstone
from contact_import.sandbox.folder_tree import ROOT_ID
from contact_import.sandbox.graph import (
    DEFAULT_TOP,
    MAX_TOP,
    BadQuery,
    graph_contact_id,
    graph_error,
    parse_select,
    selected,
    to_graph_contact,
)
from contact_import.sandbox.listing import (
    Listing,
    listing_people,
    listing_token,
    malformed_answer,
    page_token_expires,
    read_token,
)
from contact_import.sandbox.state import Admitted, WireJSONResponse

__all__ = ["DEFAULT_FOLDER", "DELTA_PATH", "contacts_delta"]

DELTA_PATH = "/v1.0/me/contactFolders/{folder}/contacts/delta"
DEFAULT_FOLDER = "contacts"
_TRACKING_OPTIONS = frozenset({"$select", "$skiptoken", "$deltatoken"})
_MAX_PAGE_SIZE = re.compile(r"^\s*odata\.maxpagesize\s*=\s*(\d+)\s*$", re.IGNORECASE)
_SYNC_STATE_GONE = "The sync state is not found or expired; synchronize again from the start."
_NO_SUCH_FOLDER = "The specified object was not found in the store."
_DELETED = {"reason": "deleted"}


class _SyncStateGone(Exception):
    """A skip or delta token Graph no longer has (or never had): 410, start again."""


async def contacts_delta(request: Request, admitted: Admitted) -> Response:
    """One page of a delta round, for a request ``state.admit`` let through."""
    tree = admitted.account.folders
    folder = tree.resolve(request.path_params["folder"])
    if folder is None:
        return graph_error(404, "ErrorItemNotFound", _NO_SUCH_FOLDER)
    kinds = _token_kinds(folder)
    try:
        listing, select = _round(request.query_params, admitted, kinds)
    except BadQuery as exc:
        return graph_error(400, exc.code, str(exc))
    except _SyncStateGone:
        return graph_error(410, "SyncStateNotFound", _SYNC_STATE_GONE)
    people = await listing_people(admitted, listing)
    people = tree.filed_in(people, folder)
    size, applied = _page_size(request.headers)
    stall = admitted.fires(admitted.account.faults.empty_page_every)
    page = _Page(listing, select, size, stall, kinds)
    body = _delta_page(people, page, request, admitted.account)
    answer = WireJSONResponse(body, headers=applied)
    return malformed_answer(admitted, bytes(answer.body)) or answer


def _token_kinds(folder: str) -> tuple[str, str]:
    """The (skip, delta) token kinds of ``folder``: a token answers for its own folder only."""
    if folder == ROOT_ID:
        return "skip", "delta"
    return f"skip:{folder}", f"delta:{folder}"


def _round(
    params: QueryParams, admitted: Admitted, kinds: tuple[str, str]
) -> tuple[Listing, tuple[str, ...]]:
    """Where this request is: a new full round, a page of a round, or a round of changes."""
    unsupported = sorted(set(params) - _TRACKING_OPTIONS)
    if unsupported:
        message = (
            "The following parameters are not supported with change tracking over the "
            f"'Contacts' resource: '{unsupported[0]}'."
        )
        raise BadQuery(message, "ErrorInvalidUrlQuery")
    account = admitted.account
    if "$deltatoken" in params:
        listing, select = _read(params["$deltatoken"], account, kinds[1])
        if account.faults.expire_sync_tokens:
            raise _SyncStateGone
        return listing.changes_since_this(account), select
    if "$skiptoken" in params:
        if page_token_expires(admitted):
            raise _SyncStateGone
        return _read(params["$skiptoken"], account, kinds[0])
    return Listing(account.changes.version), parse_select(params.get("$select", ""))


def _read(token: str, account: Account, kind: str) -> tuple[Listing, tuple[str, ...]]:
    read = read_token(token, account, kind)
    if read is None:
        raise _SyncStateGone
    listing, select = read
    return listing, tuple(name for name in select.split(",") if name)


def _page_size(headers: Mapping[str, str]) -> tuple[int, dict[str, str]]:
    """The page size ``Prefer`` asks for (default 10, at most 1000), and the header saying so."""
    for preference in headers.get("prefer", "").split(","):
        match = _MAX_PAGE_SIZE.match(preference)
        if match and int(match[1]) >= 1:
            size = min(int(match[1]), MAX_TOP)
            return size, {"Preference-Applied": f"odata.maxpagesize={size}"}
    return DEFAULT_TOP, {}


@dataclass(frozen=True, slots=True)
class _Page:
    """What one delta page is made of; ``stall``: empty, with a next link to where it is."""

    listing: Listing
    select: tuple[str, ...]
    size: int
    stall: bool
    kinds: tuple[str, str]  # of its skip and delta tokens


def _delta_page(
    people: list[dict[str, Any]], page: _Page, request: Request, account: Account
) -> dict[str, Any]:
    listing, select = page.listing, ",".join(page.select)
    start, end, next_offset = listing.page_bounds(page.size, len(people))
    if page.stall:
        end, next_offset = start, start
    body: dict[str, Any] = {
        "@odata.context": f"{request.base_url}v1.0/$metadata#Collection(contact)",
        "value": [_entry(person, page.select) for person in people[start:end]],
    }
    if next_offset is not None:
        token = listing_token(account, page.kinds[0], listing.at(next_offset), select)
        body["@odata.nextLink"] = _link(request, "$skiptoken", token)
    else:
        token = listing_token(account, page.kinds[1], Listing(listing.version), select)
        body["@odata.deltaLink"] = _link(request, "$deltatoken", token)
    return body


def _entry(person: dict[str, Any], select: tuple[str, ...]) -> dict[str, Any]:
    kind = {"@odata.type": "#microsoft.graph.contact"}
    if is_tombstone(person):
        return kind | {"id": graph_contact_id(person["resourceName"]), "@removed": _DELETED}
    return kind | selected(to_graph_contact(person), select)


def _link(request: Request, name: str, token: str) -> str:
    """This route's absolute URL (from the request, as Graph's own) with only the token."""
    return str(request.url.replace(query=urlencode([(name, token)])))
