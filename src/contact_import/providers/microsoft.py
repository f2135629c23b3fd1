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

import time
from collections.abc import Callable, Iterator
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
    "CONTACT_FIELDS",
    "MicrosoftContactsSource",
    "contact_to_incoming",
    "error_for_response",
    "parse_contacts",
]

CONTACT_FIELDS = (
    "id,displayName,givenName,surname,emailAddresses,businessPhones,homePhones,mobilePhone"
)
MAX_PAGE_SIZE = 1000  # Outlook resources: $top defaults to 10 and goes up to 1000
DELTA_PATH = "/v1.0/me/contactFolders/contacts/contacts/delta"
_API_NAME = "Microsoft Graph"
_SCOPE_MESSAGE = (
    "Microsoft did not grant access to your contacts — "
    "reconnect your account and allow contacts access"
)
# Graph's codes are not consistently cased ("TooManyRequests", "activityLimitReached"): all
# comparisons are on lowercase codes, found anywhere in the innerError chain.
_THROTTLE_CODES = frozenset(
    {"toomanyrequests", "applicationthrottled", "activitylimitreached", "throttledrequest"}
)
_SYNC_EXPIRED_CODES = frozenset({"syncstatenotfound", "syncstateinvalid", "resyncrequired"})
_DEFAULT_PORTS = {"http": 80, "https": 443}
_MAX_DETAIL = 200


class MicrosoftContactsSource:
    """A ``ContactSource`` over the contact delta of the default Contacts folder."""

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
        """``sync_token``: the ``@odata.deltaLink`` of an earlier listing; None lists all."""
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
        self._client = client
        self._url = api_url.rstrip("/") + DELTA_PATH
        self._origin = _origin(self._url)
        self._headers = {
            "Authorization": f"Bearer {access_token}",
            "Prefer": f"odata.maxpagesize={page_size}",
        }
        self._page_size = page_size
        self._policy = RetryPolicy(max_retries, max_retry_after, sleep)
        self._sync_token = sync_token or None

    def __repr__(self) -> str:
        mode = "incremental" if self._sync_token else "full"
        return f"MicrosoftContactsSource(url={self._url!r}, page_size={self._page_size}, {mode})"

    def fetch_page(self, cursor: str | None) -> ContactPage:
        """Fetch the page at ``cursor``: an ``@odata.nextLink``, or None for the first page.

        The first page of a source given a delta link is the first page of changes since.
        """
        link = cursor or self._sync_token
        if link:
            self._require_our_origin(link)
        response = get_with_retries(
            self._client,
            link or self._url,
            api_name=_API_NAME,
            headers=self._headers,
            error_for_response=error_for_response,
            policy=self._policy,
            params=None if link else {"$select": CONTACT_FIELDS},
        )
        page = parse_contacts(json_object(response, _API_NAME))
        for returned in (page.next_cursor, page.sync_token):
            if returned is not None:
                self._require_our_origin(returned)
        return page

    def _require_our_origin(self, link: str) -> None:
        """Refuse a link that would carry our token to another scheme, host or port."""
        if _origin(link) != self._origin:
            raise RequestRejected(
                "a Microsoft Graph next-page or delta link points to another host; "
                "it was not followed"
            )


def _origin(url: str) -> tuple[str, str, int | None]:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        raise RequestRejected("a Microsoft Graph URL is not valid") from None
    return parsed.scheme, parsed.host, parsed.port or _DEFAULT_PORTS.get(parsed.scheme)


# --- errors ------------------------------------------------------------------------------------


def error_for_response(response: httpx.Response, *, now: float) -> ProviderError:
    """The exception a non-2xx answer of Microsoft Graph stands for."""
    status = response.status_code
    codes, code, message = _graph_error(response)
    # 509 is Graph's "bandwidth limit exceeded": throttling too, with a wait to honour.
    if status in {429, 509} or codes & _THROTTLE_CODES:
        retry_after = parse_retry_after(response.headers.get("Retry-After"), now=now)
        return RateLimited(f"Microsoft rate limit reached (HTTP {status})", retry_after=retry_after)
    if status >= 500:
        return ProviderUnavailable(f"Microsoft Graph is unavailable (HTTP {status})")
    if 400 <= status < 500:
        return _client_error(status, codes, code, message)
    return MalformedResponse(f"unexpected HTTP {status} from Microsoft Graph")


def _client_error(status: int, codes: frozenset[str], code: str, message: str) -> ProviderError:
    if status == 401:
        return AccessTokenExpired("Microsoft refused the access token (HTTP 401)")
    if status == 403:
        return InsufficientScope(_SCOPE_MESSAGE)
    if status == 410 or codes & _SYNC_EXPIRED_CODES:
        return CursorExpired(f"Microsoft no longer accepts this sync state (HTTP {status})")
    detail = f" {code}: {message[:_MAX_DETAIL]}" if code or message else ""
    return RequestRejected(f"Microsoft rejected the request (HTTP {status}){detail}")


def _graph_error(response: httpx.Response) -> tuple[frozenset[str], str, str]:
    """(every code in the innerError chain, lowercased; the top code; its message)."""
    try:
        body = response.json()
    except ValueError:
        return frozenset(), "", ""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return frozenset(), "", ""
    codes = frozenset(code.lower() for code in _chain_codes(error))
    return codes, _text(error.get("code")), _text(error.get("message"))


def _chain_codes(error: dict[str, Any]) -> Iterator[str]:
    current: object = error
    for _ in range(10):  # Graph nests a few levels at most; a cycle cannot come from JSON
        if not isinstance(current, dict):
            return
        if code := _text(current.get("code")):
            yield code
        current = current.get("innerError", current.get("innererror"))


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
    display = _text(contact.get("displayName"))
    if display:
        return display
    parts = (_text(contact.get("givenName")), _text(contact.get("surname")))
    return " ".join(part for part in parts if part)


def _emails(addresses: object) -> tuple[str, ...]:
    if not isinstance(addresses, list):
        return ()
    found = (_text(a.get("address")) for a in addresses if isinstance(a, dict))
    return tuple(address for address in found if address)


def _phones(contact: dict[str, Any]) -> tuple[PhoneInput, ...]:
    numbers = [
        *_strings(contact.get("businessPhones")),
        *_strings(contact.get("homePhones")),
        _text(contact.get("mobilePhone")),
    ]
    return tuple(PhoneInput(number) for number in numbers if number)


def _strings(value: object) -> list[str]:
    return [_text(item) for item in value] if isinstance(value, list) else []


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""
