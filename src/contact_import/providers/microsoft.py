"""Microsoft Graph: the signed-in user's Outlook contacts, one page of a contact delta at a time.

Every listing goes through change tracking on the default Contacts folder
(``GET /me/contactFolders/contacts/contacts/delta``, the well-known name of the folder
``/me/contacts`` lists): a full listing ends with an ``@odata.deltaLink``, and a later source
given that link lists only what changed since (deleted contacts come back as ``@removed``
entries). Delta takes no ``$top`` or ``$count``: the page size goes in ``Prefer:
odata.maxpagesize``, and a full listing has no total. A link Graph no longer honours answers 410
(or ``syncStateNotFound``): ``CursorExpired``, list again from the start.

The cursor is Graph's ``@odata.nextLink``, an absolute URL followed exactly as Graph sent it
(Graph: "do not try to extract the $skiptoken or $skip value"); the delta link is followed the
same way. Since our bearer token goes with them, a link to any origin but the configured API
URL's is refused, whether it arrives in a body or comes back from the database. A page may be
empty and still have a next link.

Every failure leaves this module as a ``contact_import.errors`` exception, never an httpx one;
rate limits, 5xx and network errors are first retried by ``providers.http``. The access token is
sent in the ``Authorization`` header only and never appears in a message or a log line.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cached_property
from typing import Any

import httpx

from contact_import.domain.contact import (
    IncomingContact,
    PhoneInput,
    StandInIds,
    unidentified_contact,
)
from contact_import.errors import CursorExpired, MalformedResponse, RequestRejected
from contact_import.providers.api_source import ApiContactSource
from contact_import.providers.base import ContactPage
from contact_import.providers.classify import ErrorBody
from contact_import.providers.wire import text

__all__ = [
    "CONTACT_FIELDS",
    "MicrosoftContactsSource",
    "contact_to_incoming",
    "error_for_response",
    "parse_contacts",
]

CONTACT_FIELDS = (
    "id,displayName,givenName,surname,emailAddresses,businessPhones,homePhones,mobilePhone"
)
DELTA_PATH = "/v1.0/me/contactFolders/contacts/contacts/delta"
# Graph's codes are not consistently cased ("TooManyRequests", "activityLimitReached"): all
# comparisons are on lowercase codes, found anywhere in the innerError chain.
_THROTTLE_CODES = frozenset(
    {"toomanyrequests", "applicationthrottled", "activitylimitreached", "throttledrequest"}
)
_SYNC_EXPIRED_CODES = frozenset({"syncstatenotfound", "syncstateinvalid", "resyncrequired"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


class MicrosoftContactsSource(ApiContactSource):
    """A ``ContactSource`` over the contact delta of the default Contacts folder.

    ``sync_token``: the ``@odata.deltaLink`` of an earlier listing; None lists everything.
    """

    label = "Microsoft"
    api_name = "Microsoft Graph"
    path = DELTA_PATH

    def fetch_page(self, cursor: str | None) -> ContactPage:
        """Fetch the page at ``cursor``: an ``@odata.nextLink``, or None for the first page.

        The first page of a source given a delta link is the first page of changes since.
        """
        link = cursor or self._sync_token
        if link:
            self._require_our_origin(link)
        params = None if link else {"$select": CONTACT_FIELDS}
        page = parse_contacts(self._get_json(link or self._url, params))
        for returned in (page.next_cursor, page.sync_token):
            if returned is not None:
                self._require_our_origin(returned)
        return page

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
