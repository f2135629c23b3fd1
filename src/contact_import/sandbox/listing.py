"""What Google's and Graph's sandbox listings do alike: sealed tokens, versions, listing faults.

A listing is pinned to the version of the account's book it started on, so its pages stay
consistent while the book changes; a full listing lists the people of that version, a sync
listing (a Google ``syncToken``, a Graph ``$deltatoken``) the people touched since an earlier
one. Every token the sandbox hands out (page, sync, skip and delta tokens) is a sealed JSON
object: opaque to clients, and refused when it was altered.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from starlette.datastructures import QueryParams
from starlette.responses import Response

from contact_import.sandbox.accounts import Account
from contact_import.sandbox.state import Admitted

__all__ = [
    "Listing",
    "listing_people",
    "listing_token",
    "malformed_answer",
    "page_token_expires",
    "query_boolean",
    "read_listing_token",
    "read_token",
    "seal",
    "unseal",
]

_SEAL_KEY = b"contact-import sandbox tokens"
_MAC_SIZE = 8
FULL = -1  # ``Listing.since`` of a full listing


@dataclass(frozen=True, slots=True)
class Listing:
    """Where a listing is: the version it lists, since which version (FULL), and how far."""

    version: int
    since: int = FULL
    offset: int = 0

    @property
    def is_sync(self) -> bool:
        return self.since != FULL

    def at(self, offset: int) -> Listing:
        """The same listing, further on."""
        return Listing(self.version, self.since, offset)

    def changes_since_this(self, account: Account) -> Listing:
        """A sync listing of what changed after this listing's version, up to the latest."""
        return Listing(account.changes.version, since=self.version)

    def page_bounds(self, size: int, total: int) -> tuple[int, int, int | None]:
        """(start, end, offset of the next page or None on the last one)."""
        end = min(self.offset + size, total)
        return self.offset, end, end if end < total else None


async def listing_people(admitted: Admitted, listing: Listing) -> list[dict[str, Any]]:
    """Every Person of ``listing`` (tombstones included in a sync), in listing order."""
    book = await admitted.book()
    changes = admitted.account.changes
    if listing.is_sync:
        return changes.changed_since(listing.since, listing.version)
    return changes.view(book.people, listing.version)


def query_boolean(params: QueryParams, name: str, refused: Callable[[str, str], Exception]) -> bool:
    """Query parameter ``name`` as ``true``/``false`` (any case; absent: false); anything else
    raises ``refused(name, text)``, the API's own error for a bad value."""
    text = params.get(name, "false").lower()
    if text not in {"true", "false"}:
        raise refused(name, text)
    return text == "true"


# --- faults ------------------------------------------------------------------------------------


def page_token_expires(admitted: Admitted) -> bool:
    """Whether this paged request answers as an expired page token (the account's Nth, once)."""
    at = admitted.account.faults.expire_page_token_at
    return at >= 2 and admitted.number == at


def malformed_answer(admitted: Admitted, body: bytes) -> Response | None:
    """Every ``malformed_every``-th request: a 200 whose JSON body is cut off halfway."""
    if not admitted.fires(admitted.account.faults.malformed_every):
        return None
    return Response(body[: max(1, len(body) // 2)], media_type="application/json")


# --- tokens ------------------------------------------------------------------------------------


def listing_token(account: Account, kind: str, listing: Listing, params: str = "") -> str:
    """A token of ``kind`` for ``listing``, valid only for ``account`` and the same ``params``."""
    return seal(
        {"a": account.id, "k": kind, "p": params, "v": listing.version, "s": listing.since,
         "o": listing.offset}
    )  # fmt: skip


def read_listing_token(token: str, account: Account, kind: str, params: str = "") -> Listing | None:
    """The listing a ``listing_token`` stands for; None when it is not one for these."""
    read = read_token(token, account, kind)
    return read[0] if read is not None and read[1] == params else None


def read_token(token: str, account: Account, kind: str) -> tuple[Listing, str] | None:
    """(listing, params) of a ``listing_token`` of ``kind`` for ``account``; None otherwise."""
    data = unseal(token)
    if data is None or (data.get("a"), data.get("k")) != (account.id, kind):
        return None
    version, since, offset, params = data.get("v"), data.get("s"), data.get("o"), data.get("p")
    if not (_is_int(version) and _is_int(since) and _is_int(offset) and isinstance(params, str)):
        return None
    return Listing(cast(int, version), cast(int, since), cast(int, offset)), params


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def seal(payload: dict[str, Any]) -> str:
    """An opaque, URL-safe token carrying ``payload``."""
    raw = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    blob = _mac(raw) + raw
    return base64.urlsafe_b64encode(blob).decode().rstrip("=")


def unseal(token: str) -> dict[str, Any] | None:
    """The payload of a token ``seal`` made; None for anything else, altered ones included."""
    try:
        blob = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        return None
    mac, raw = blob[:_MAC_SIZE], blob[_MAC_SIZE:]
    if not hmac.compare_digest(mac, _mac(raw)):
        return None
    try:
        payload = json.loads(raw)
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None


def _mac(raw: bytes) -> bytes:
    return hmac.new(_SEAL_KEY, raw, hashlib.sha256).digest()[:_MAC_SIZE]
