"""What every provider adapter offers the importer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from contact_import.domain.contact import IncomingContact

__all__ = ["ContactPage", "ContactSource"]


@dataclass(frozen=True, slots=True)
class ContactPage:
    """One page of a listing. ``next_cursor`` is None on the last page.

    ``total`` is the provider's own count of the whole listing when it reports one
    (Google ``totalItems``, Microsoft ``@odata.count``). ``sync_token`` is set on the last page
    only, when the provider hands out a token that lists only what changes from now on (Google
    ``nextSyncToken``, Microsoft's whole ``@odata.deltaLink``): the source's ``sync_token`` for
    the next import.
    """

    contacts: list[IncomingContact] = field(default_factory=list)
    next_cursor: str | None = None
    total: int | None = None
    sync_token: str | None = None


class ContactSource(Protocol):
    """A provider's contact listing, read one page at a time from an opaque cursor."""

    def fetch_page(self, cursor: str | None) -> ContactPage:
        """Fetch the page at ``cursor`` (None: the first page).

        Raises the ProviderError subclasses of ``contact_import.errors``; never an httpx error.
        """
        ...
