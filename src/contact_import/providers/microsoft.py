"""Microsoft Graph: the signed-in user's Outlook contacts, one page of a contact delta at a time.

Every listing goes through change tracking, folder by folder: first the default Contacts folder
(``GET /me/contactFolders/contacts/contacts/delta``, the well-known name of the folder
``/me/contacts`` lists), then every other contact folder, child folders included
(``GET /me/contactFolders`` and ``/me/contactFolders/{id}/childFolders``, paged by
``@odata.nextLink``, listed when the default folder is done), each through
``/me/contactFolders/{id}/contacts/delta``. Each folder's round ends with its own
``@odata.deltaLink``; the sync token of the listing holds them all and a later source given it
lists only what changed since in each folder (deleted contacts come back as ``@removed``
entries), and a folder new since then in full. A folder that answers 404 is gone: it is left
out (Graph deleted its contacts with it; we never delete an imported contact, as for any
``@removed`` one). How the walk is written into the cursor and the token: ``graph_folders``.

Delta takes no ``$top`` or ``$count``: the page size goes in ``Prefer: odata.maxpagesize``,
and a full listing has no total. A link Graph no longer honours answers 410
(or ``syncStateNotFound``): ``CursorExpired``, list again from the start.

Within a folder the cursor holds Graph's ``@odata.nextLink``, an absolute URL followed exactly
as Graph sent it (Graph: "do not try to extract the $skiptoken or $skip value"); delta links
are followed the same way. Since our bearer token goes with them, a link to any origin but the
configured API URL's is refused, whether it arrives in a body or comes back from the database.
A page may be empty and still have a next link.

Every failure leaves this module as a ``contact_import.errors`` exception, never an httpx one;
rate limits, 5xx and network errors are first retried by ``providers.http``. The access token is
sent in the ``Authorization`` header only and never appears in a message or a log line.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import replace
from functools import cached_property
from typing import Any
from urllib.parse import quote

import httpx

from contact_import.domain.contact import (
    IncomingContact,
    PhoneInput,
    StandInIds,
    unidentified_contact,
)
from contact_import.errors import (
    ContactImportError,
    CursorExpired,
    MalformedResponse,
    ProviderError,
    RequestRejected,
)
from contact_import.providers.api_source import ApiContactSource
from contact_import.providers.base import ContactPage
from contact_import.providers.classify import ErrorBody
from contact_import.providers.graph_folders import (
    DEFAULT_FOLDER,
    FolderWalk,
    Stop,
    decode_cursor,
    decode_sync_state,
    encode_cursor,
    encode_sync_state,
)
from contact_import.providers.wire import text

__all__ = [
    "CONTACT_FIELDS",
    "MicrosoftContactsSource",
    "contact_to_incoming",
    "error_for_response",
    "parse_contacts",
    "parse_folder_ids",
]

CONTACT_FIELDS = (
    "id,displayName,givenName,surname,emailAddresses,businessPhones,homePhones,mobilePhone,"
    "changeKey"
)
FOLDER_FIELDS = "id,displayName,parentFolderId"
FOLDERS_PATH = "/v1.0/me/contactFolders"
FOLDER_DELTA_PATH = FOLDERS_PATH + "/{folder}/contacts/delta"
DELTA_PATH = FOLDER_DELTA_PATH.format(folder=DEFAULT_FOLDER)
MAX_FOLDERS = 10_000  # a bound on the walk (a mailbox has a few; a cycle cannot grow past it)
# Graph's codes are not consistently cased ("TooManyRequests", "activityLimitReached"): all
# comparisons are on lowercase codes, found anywhere in the innerError chain.
_THROTTLE_CODES = frozenset(
    {"toomanyrequests", "applicationthrottled", "activitylimitreached", "throttledrequest"}
)
_SYNC_EXPIRED_CODES = frozenset({"syncstatenotfound", "syncstateinvalid", "resyncrequired"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


class MicrosoftContactsSource(ApiContactSource):
    """A ``ContactSource`` over the contact deltas of every contact folder.

    ``sync_token``: what the last page of an earlier listing handed out (each folder's
    ``@odata.deltaLink``, see ``graph_folders``); None lists everything.
    """

    label = "Microsoft"
    api_name = "Microsoft Graph"
    path = DELTA_PATH

    @cached_property
    def _state(self) -> dict[str, str]:
        """Each folder's stored delta link (read on the first fetch: CursorExpired there lists
        everything again)."""
        return decode_sync_state(self._sync_token)

    @cached_property
    def _api(self) -> str:
        return self._url.removesuffix(DELTA_PATH)

    def fetch_page(self, cursor: str | None) -> ContactPage:
        """Fetch the page at ``cursor`` (see ``graph_folders``), or None for the first page:
        the default folder's, of changes since its stored delta link if there is one.

        A folder that answers 404 is gone (deleted since it was listed): it is left out, and
        the walk goes on with the next one in the same call.
        """
        walk = decode_cursor(cursor) if cursor else self._first_stop()
        while True:
            page = self._folder_page(walk.at)
            if page is not None and page.next_cursor is not None:
                return replace(page, next_cursor=encode_cursor(walk.further(page.next_cursor)))
            found = None if walk.discovered else self._other_folders()
            walk = walk.finished(page.sync_token if page else None, found)
            if walk.over:
                contacts = page.contacts if page else []
                return ContactPage(contacts, sync_token=encode_sync_state(walk.done))
            if page is not None:
                return ContactPage(page.contacts, encode_cursor(walk), page.total)

    def _first_stop(self) -> FolderWalk:
        return FolderWalk(Stop(DEFAULT_FOLDER, self._state.get(DEFAULT_FOLDER)))

    def _folder_page(self, stop: Stop) -> ContactPage | None:
        """One delta page of ``stop``'s folder; None when that folder (not the default) is gone."""
        if stop.link:
            self._require_our_origin(stop.link)
        url = stop.link or self._api + FOLDER_DELTA_PATH.format(folder=_segment(stop.folder))
        params = None if stop.link else {"$select": CONTACT_FIELDS}
        errors = self.error_for_response if stop.folder == DEFAULT_FOLDER else _gone_on_404
        try:
            page = parse_contacts(self._get_json(url, params, errors))
        except _FolderGone:
            return None
        for returned in (page.next_cursor, page.sync_token):
            if returned is not None:
                self._require_our_origin(returned)
        return page

    def _other_folders(self) -> tuple[Stop, ...]:
        """Every contact folder but the default one, parents before their children, each with
        the delta link the last import kept for it (a folder new since then: none)."""
        found: dict[str, None] = {}  # ordered, and a folder is looked up in O(1)
        parents: deque[str | None] = deque([None])  # None: the default folder's children
        while parents:
            for folder in self._child_folders(parents.popleft()):
                if folder not in found and folder != DEFAULT_FOLDER:
                    found[folder] = None
                    parents.append(folder)
            if len(found) > MAX_FOLDERS:
                raise RequestRejected(f"Microsoft lists more than {MAX_FOLDERS} contact folders")
        return tuple(Stop(folder, self._state.get(folder)) for folder in found)

    def _child_folders(self, parent: str | None) -> list[str]:
        """The ids of ``parent``'s child folders, every page of them; [] when it is gone."""
        path = FOLDERS_PATH + ("" if parent is None else f"/{_segment(parent)}/childFolders")
        link: str | None = self._api + path
        params: dict[str, str] | None = {"$select": FOLDER_FIELDS, "$top": str(self._page_size)}
        ids: list[str] = []
        while link is not None:
            self._require_our_origin(link)
            try:
                body = self._get_json(link, params, _gone_on_404)
            except _FolderGone:
                return []
            ids += parse_folder_ids(body)
            link, params = _link(body, "@odata.nextLink"), None
        return ids

    @staticmethod
    def error_codes(error: dict[str, Any]) -> Iterator[str]:
        """Every code of the error's innerError chain, lowercased."""
        current: object = error
        for _ in range(10):  # Graph nests a few levels at most; a cycle cannot come from JSON
            if not isinstance(current, dict):
                return
            if code := text(current.get("code")):
                yield code.lower()
            current = current.get("innerError", current.get("innererror"))

    @staticmethod
    def throttled(status: int, body: ErrorBody) -> bool:
        # 509 is Graph's "bandwidth limit exceeded": throttling too, with a wait to honour.
        return status == 509 or bool(body.codes & _THROTTLE_CODES)

    @staticmethod
    def refused(status: int, body: ErrorBody) -> CursorExpired | None:
        if status == 410 or body.codes & _SYNC_EXPIRED_CODES:
            return CursorExpired(f"Microsoft no longer accepts this sync state (HTTP {status})")
        return None

    def _headers_for(self, page_size: int) -> dict[str, str]:
        return {"Prefer": f"odata.maxpagesize={page_size}"}  # delta takes no $top

    @cached_property
    def _origin(self) -> tuple[str, str, int | None]:
        return _origin_of(self._url)

    def _require_our_origin(self, link: str) -> None:
        """Refuse a link that would carry our token to another scheme, host or port."""
        if _origin_of(link) != self._origin:
            raise RequestRejected(
                "a Microsoft Graph next-page or delta link points to another host; "
                "it was not followed"
            )


error_for_response = MicrosoftContactsSource.error_for_response


class _FolderGone(ProviderError):
    """A folder answered 404: deleted since it was listed (or since the last import)."""


def _gone_on_404(response: httpx.Response, *, now: float) -> ContactImportError:
    if response.status_code == 404:
        return _FolderGone("the Microsoft contact folder is gone")
    return error_for_response(response, now=now)


def _segment(folder_id: str) -> str:
    """A folder id as one path segment (Outlook ids may hold ``/`` or ``=``)."""
    return quote(folder_id, safe="")


def _origin_of(url: str) -> tuple[str, str, int | None]:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        raise RequestRejected("a Microsoft Graph URL is not valid") from None
    return parsed.scheme, parsed.host, parsed.port or _DEFAULT_PORTS.get(parsed.scheme)


# --- contact -> IncomingContact ----------------------------------------------------------------


def parse_contacts(body: dict[str, Any]) -> ContactPage:
    """The page a contacts or contact delta body describes (an empty one may have a next link)."""
    value = body.get("value", [])
    if not isinstance(value, list):
        raise MalformedResponse("Microsoft Graph sent a 'value' that is not a list")
    next_link, delta_link = _link(body, "@odata.nextLink"), _link(body, "@odata.deltaLink")
    if next_link and delta_link:
        raise MalformedResponse("Microsoft Graph sent both a next link and a delta link")
    count = body.get("@odata.count")
    stand_ins = StandInIds()
    return ContactPage(
        contacts=[contact_to_incoming(contact, stand_ins) for contact in value],
        next_cursor=next_link,
        total=count if isinstance(count, int) and not isinstance(count, bool) else None,
        sync_token=delta_link,
    )


def parse_folder_ids(body: dict[str, Any]) -> list[str]:
    """The ids of the ``contactFolder`` objects of a folders or childFolders body."""
    value = body.get("value", [])
    if not isinstance(value, list):
        raise MalformedResponse("Microsoft Graph sent a 'value' that is not a list")
    ids = [folder.get("id") if isinstance(folder, dict) else None for folder in value]
    if not all(isinstance(folder_id, str) and folder_id for folder_id in ids):
        raise MalformedResponse("Microsoft Graph sent a contact folder without an id")
    return [str(folder_id) for folder_id in ids]


def _link(body: dict[str, Any], key: str) -> str | None:
    link = body.get(key)
    if link is not None and not (isinstance(link, str) and link):
        raise MalformedResponse(f"Microsoft Graph sent an '{key}' that is not a URL")
    return link


def contact_to_incoming(contact: object, stand_ins: StandInIds | None = None) -> IncomingContact:
    """One Graph contact (or delta ``@removed`` entry) as an ``IncomingContact``.

    A contact without an id (or an entry that is no object) fails alone: it gets a stand-in id
    from ``stand_ins`` (one per page) and a ``problem``.
    """
    if not isinstance(contact, dict):
        return unidentified_contact(
            contact, stand_ins, "Microsoft sent an entry that is not a contact"
        )
    contact_id = contact.get("id")
    if not isinstance(contact_id, str) or not contact_id:
        return unidentified_contact(contact, stand_ins, "Microsoft sent this contact without an id")
    if "@removed" in contact:  # {"reason": "deleted"}; "changed" is not sent for contacts
        return IncomingContact(provider_contact_id=contact_id, deleted=True)
    return IncomingContact(
        provider_contact_id=contact_id,
        display_name=_display_name(contact),
        emails=_emails(contact.get("emailAddresses")),
        phones=_phones(contact),
        version=text(contact.get("changeKey")) or None,
    )


def _display_name(contact: dict[str, Any]) -> str:
    display = text(contact.get("displayName"))
    if display:
        return display
    parts = (text(contact.get("givenName")), text(contact.get("surname")))
    return " ".join(part for part in parts if part)


def _emails(addresses: object) -> tuple[str, ...]:
    if not isinstance(addresses, list):
        return ()
    found = (text(a.get("address")) for a in addresses if isinstance(a, dict))
    return tuple(address for address in found if address)


def _phones(contact: dict[str, Any]) -> tuple[PhoneInput, ...]:
    numbers = [
        *_strings(contact.get("businessPhones")),
        *_strings(contact.get("homePhones")),
        text(contact.get("mobilePhone")),
    ]
    return tuple(PhoneInput(number) for number in numbers if number)


def _strings(value: object) -> list[str]:
    return [text(item) for item in value] if isinstance(value, list) else []


def account_email_of(user: dict[str, Any]) -> str | None:
    """Graph ``/me``'s email: ``mail``, else the sign-in name (``userPrincipalName``)."""
    for key in ("mail", "userPrincipalName"):
        value = user.get(key)
        if isinstance(value, str) and value:
            return value
    return None
