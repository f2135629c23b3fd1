"""A full re-import skips what did not change at the provider, without loading or merging it.

Each test runs on both backends and for both providers: Google's Person ``etag`` and Graph's
``changeKey`` are the version recorded with the contact each provider contact went into.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import Engine, delete, event, select, update

from contact_import.domain.merge import identity_key
from contact_import.runtime import Runtime
from contact_import.sandbox.graph import graph_contact_id
from contact_import.sandbox.server import RunningSandbox
from contact_import.settings import Settings
from contact_import.store.jobs import Job
from contact_import.store.schema import contact_match_keys, contacts, imported_contacts
from tests.helpers import assert_consistent, drain

SIZE = 240
UNCHANGED = "unchanged at the provider"
# What matching and merging a contact reads and writes (``load_matches``, ``write_plan``): the
# key owners, the owning contacts, and every write but the audit rows and the checkpoint.
_MATCHING = re.compile(
    r"SELECT contact_match_keys\.key|SELECT contacts\.id|UPDATE contacts|"
    r"INSERT INTO contacts|INSERT INTO contact_match_keys|INSERT INTO provider_versions"
)
# On Postgres a page's writes are one statement (``store.contacts._page_writes``), a JSON
# list per table: those other than the audit rows' must be empty.
_PAGE_WRITES = "WITH created_rows AS"
_MERGE_LISTS = ("created", "merged", "keys", "versions")


@pytest.fixture(params=["google", "microsoft"])
def provider(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@dataclass
class Book:
    """One sandbox account imported by one user, again and again, each time in full."""

    rt: Runtime
    sandbox: RunningSandbox
    provider: str
    token: str
    grant_id: UUID
    user: str = "ada"

    def pcid(self, resource_name: str) -> str:
        """The provider's id of a sandbox Person."""
        return resource_name if self.provider == "google" else graph_contact_id(resource_name)

    def full_import(self) -> Job:
        self.rt.grants.clear_sync_token(self.grant_id)  # as when a sync token expired
        job, created = self.rt.jobs.create(self.user, self.provider, self.grant_id)
        assert created
        drain(self.rt, concurrency=1)
        done = self.rt.jobs.get(job.id)
        assert_consistent(self.rt.engine, done, SIZE)
        return done


@pytest.fixture
def book(
    settings_for: Callable[..., Settings], sandbox: RunningSandbox, provider: str
) -> Iterator[Book]:
    with Runtime.build(settings_for(page_size=100)) as rt:
        token = sandbox.state.add_account(size=SIZE, seed=23)
        grant_id = rt.grants.create("ada", provider, access_token=token)
        yield Book(rt, sandbox, provider, token, grant_id)


@contextmanager
def matching_statements(engine: Engine) -> Iterator[list[str]]:
    """The statements that matched or merged contacts while the block ran."""
    found: list[str] = []

    def record(_conn: Any, _cursor: Any, sql: str, params: Any, *_args: Any) -> None:
        if sql.startswith(_PAGE_WRITES):
            found.extend(f"{name}: {params[name]}" for name in _MERGE_LISTS if params[name] != "[]")
        elif _MATCHING.search(sql):
            found.append(sql)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield found
    finally:
        event.remove(engine, "before_cursor_execute", record)


def outcomes(engine: Engine, job: Job) -> dict[str, tuple[str, UUID | None, str | None]]:
    """Provider id → (action, contact, detail) of every audit row of ``job``."""
    ic = imported_contacts.c
    stmt = select(ic.provider_contact_id, ic.action, ic.contact_id, ic.detail).where(
        ic.import_job_id == job.id
    )
    with engine.connect() as conn:
        return {row[0]: (row[1], row[2], row[3]) for row in conn.execute(stmt)}


def merged(found: dict[str, tuple[str, UUID | None, str | None]]) -> set[str]:
    """The provider ids that went into a contact."""
    return {pcid for pcid, (_, contact_id, _) in found.items() if contact_id is not None}


def test_an_unchanged_book_is_skipped_without_matching_anything(book: Book) -> None:
    first = book.full_import()
    with matching_statements(book.rt.engine) as statements:
        again = book.full_import()
    assert statements == []
    assert (again.created_contacts, again.updated_contacts) == (0, 0)
    assert again.skipped_contacts == again.processed_contacts == SIZE
    before, after = outcomes(book.rt.engine, first), outcomes(book.rt.engine, again)
    unchanged = {pcid for pcid, (_, _, detail) in after.items() if detail == UNCHANGED}
    # Everything that went into a contact, into the same contact; the rest (nothing to
    # import) is skipped as before.
    assert unchanged == merged(before)
    assert len(unchanged) > SIZE * 0.9
    assert all(after[pcid][1] == before[pcid][1] for pcid in unchanged)


def test_a_contact_edited_at_the_provider_is_merged_again(book: Book) -> None:
    book.full_import()
    edited = book.sandbox.state.change_book(book.token, modified=1, seed=4)["modified"]
    again = book.full_import()
    assert (again.created_contacts, again.updated_contacts) == (0, 1)
    assert again.skipped_contacts == SIZE - 1
    after = outcomes(book.rt.engine, again)
    assert after[book.pcid(edited[0])][0] == "updated"
    # Its new version is recorded: the next import skips it too.
    with matching_statements(book.rt.engine) as statements:
        third = book.full_import()
    assert statements == []
    assert (third.skipped_contacts, third.created_contacts, third.updated_contacts) == (SIZE, 0, 0)


def _single(found: dict[str, tuple[str, UUID | None, str | None]], n: int) -> list[str]:
    """``n`` provider ids that each created a contact no other provider contact went into."""
    owners = Counter(contact_id for _, contact_id, _ in found.values() if contact_id)
    created = [(p, c) for p, (action, c, _) in found.items() if action == "created"]
    return sorted(p for p, c in created if c is not None and owners[c] == 1)[:n]


def test_a_contact_deleted_or_merged_away_here_is_not_skipped(book: Book) -> None:
    first = outcomes(book.rt.engine, book.full_import())
    gone, moved, other = _single(first, 3)
    with book.rt.engine.begin() as conn:
        conn.execute(delete(contacts).where(contacts.c.id == first[gone][1]))
        # "Merged into another here": its identity now belongs to another contact.
        key = identity_key(book.provider, moved)
        k = contact_match_keys.c
        conn.execute(
            update(contact_match_keys)
            .where(k.user_id == book.user, k.key == key)
            .values(contact_id=first[other][1])
        )
    again = book.full_import()
    after = outcomes(book.rt.engine, again)
    assert after[gone][0] == "created"
    assert after[gone][1] != first[gone][1]
    assert after[gone][2] is None
    assert after[moved][1] == first[other][1]
    assert after[moved][2] != UNCHANGED
    assert again.created_contacts == 1
    assert again.skipped_contacts + again.updated_contacts == SIZE - 1
    assert sum(detail == UNCHANGED for _, _, detail in after.values()) == len(merged(first)) - 2


def test_a_contact_edited_here_is_skipped_and_keeps_the_edit(book: Book) -> None:
    """Edited in the app (renamed, an email removed), unchanged at the provider: skipped on
    its version into the same contact, and the app's edit stands."""
    first = outcomes(book.rt.engine, book.full_import())
    (pcid,) = _single(first, 1)
    contact_id = first[pcid][1]
    c = contacts.c
    with book.rt.engine.begin() as conn:
        conn.execute(
            update(contacts)
            .where(c.id == contact_id)
            .values(display_name="Renamed here", emails=[])
        )
    with matching_statements(book.rt.engine) as statements:
        again = book.full_import()
    assert statements == []  # nothing matched or merged: the fast path all the way
    assert outcomes(book.rt.engine, again)[pcid] == ("skipped", contact_id, UNCHANGED)
    with book.rt.engine.connect() as conn:
        row = conn.execute(select(c.display_name, c.emails).where(c.id == contact_id)).one()
    assert (row.display_name, row.emails) == ("Renamed here", [])
