"""A page handed to the page write as listed (not normalized yet) is stored exactly as the same
page normalized first; only the contacts unchanged at the provider stay un-normalized.

The importer hands pages over as listed during a full re-import (most of a page unchanged):
the page write normalizes what it must match. On both backends, through ``write_page``.
"""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import select

from contact_import.domain.contact import IncomingContact, PhoneInput, normalize_contact
from contact_import.runtime import Runtime
from contact_import.store.page import Listed, PageWrite, write_page
from contact_import.store.schema import contacts
from tests.helpers import audit_rows

REGION = "US"


def _book(version: str) -> list[IncomingContact]:
    """A page with clean, repeated, dirty, deleted and empty contacts; ``version`` is the
    provider version of the one contact edited between listings (people/4)."""
    return [
        IncomingContact("people/1", "Ada Lovelace", ("ada@example.com",), version="v1"),
        IncomingContact("people/2", "", (), (PhoneInput("+1 415 555 0134"),), version="v1"),
        IncomingContact("people/1", "Ada again", ("ada@example.com",), version="v1"),  # repeat
        IncomingContact("people/\x00nul", "Nul Id", ("nul@example.com",), version="v1"),
        IncomingContact("no-id:abc", problem="Google sent this Person without a resourceName"),
        IncomingContact("people/3", "Bad Email", ("bad\x00@example.com",), version="v1"),
        IncomingContact(
            "people/4",
            "Grace",
            ("grace@example.com",),
            (PhoneInput("+14155550100"),),
            version=version,
        ),
        IncomingContact("people/5", "Gone", ("gone@example.com",), deleted=True, version="v1"),
        IncomingContact("people/6", "", (), version="v1"),  # nothing to import
        IncomingContact("people/7", "Ada L.", ("ADA@example.com",), version="v1"),  # merges
    ]


def _edited() -> list[IncomingContact]:
    book = _book("v2")
    book[6] = IncomingContact(
        "people/4", "Grace", ("grace@example.com", "grace@navy.mil"), version="v2"
    )
    return book


def _write(
    rt: Runtime, user: str, page: list[Listed]
) -> dict[str, tuple[str, UUID | None, str | None]]:
    job, created = rt.jobs.create(user, "google")
    assert created
    (claimed,) = rt.jobs.claim(f"w-{user}", 1).jobs
    write_page(
        rt.engine,
        rt.grants,
        PageWrite(claimed, page, next_cursor=None, provider_total=len(page), default_region=REGION),
        lease_seconds=30,
        webhooks=False,
    )
    return audit_rows(rt.engine, job.id)


def _stored(rt: Runtime, user: str) -> list[tuple[str, list[str], list[str]]]:
    c = contacts.c
    with rt.engine.connect() as conn:
        rows = conn.execute(select(c.display_name, c.emails, c.phones).where(c.user_id == user))
        return sorted((r.display_name, sorted(r.emails), sorted(r.phones)) for r in rows)


def _shape(
    audit: dict[str, tuple[str, UUID | None, str | None]],
) -> dict[str, tuple[str, bool, str | None]]:
    """The audit rows without the contact ids (they differ between users)."""
    return {
        pcid: (action, cid is not None, detail) for pcid, (action, cid, detail) in audit.items()
    }


def test_a_page_as_listed_is_stored_as_the_same_page_normalized(runtime: Runtime) -> None:
    normalized: list[Listed] = [normalize_contact(c, REGION) for c in _book("v1")]
    eager = [_write(runtime, "eager", normalized)]
    lazy = [_write(runtime, "lazy", list(_book("v1")))]
    # The same book again, one contact edited at the provider: all but it are unchanged.
    eager.append(_write(runtime, "eager", [normalize_contact(c, REGION) for c in _edited()]))
    lazy.append(_write(runtime, "lazy", list(_edited())))

    assert [_shape(a) for a in lazy] == [_shape(a) for a in eager]
    assert _stored(runtime, "lazy") == _stored(runtime, "eager")
    first, again = lazy
    assert first["people/1"][0] == "created"
    assert first["people/7"][:2] == ("skipped", first["people/1"][1])  # Ada's email: into her
    assert sum(action == "failed" for action, _, _ in first.values()) == 3
    assert again["people/4"][0] == "updated"
    unchanged = {p for p, (_, _, detail) in again.items() if detail == "unchanged at the provider"}
    assert unchanged == {"people/1", "people/2", "people/7"}
    # What failed the first time fails again, for the same reason, under the same ids.
    assert {p: d for p, (a, _, d) in again.items() if a == "failed"} == {
        p: d for p, (a, _, d) in first.items() if a == "failed"
    }
