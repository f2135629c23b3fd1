"""A value the database itself refuses fails only its contact, never the page or the job.

Normalization cannot know every database's limits, so these databases really refuse a value
normalization lets through:

- Postgres with a LATIN1 database (legacy clusters still run ``ENCODING 'LATIN1'``): psycopg
  cannot encode a Japanese name for the connection (``UnicodeEncodeError``, client side) or,
  with ``client_encoding=utf8`` in the URL, the server cannot convert it (``DataError``,
  SQLSTATE 22P05);
- SQLite built with a lower length limit (``SQLITE_MAX_LENGTH``; set here per connection with
  ``setlimit``): a contact with many long emails is a row too big (``sqlite3.DataError``).
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import Engine, event, select

from contact_import.domain.contact import IncomingContact, PhoneInput, normalize_contact
from contact_import.runtime import Runtime
from contact_import.sandbox.book import generate_book
from contact_import.sandbox.server import RunningSandbox
from contact_import.settings import Settings
from contact_import.store.db import create_db_engine, upgrade_database
from contact_import.store.job_rows import PageCounts
from contact_import.store.page import PageWrite, write_page
from contact_import.store.schema import contact_match_keys, contacts, imported_contacts
from tests.helpers import assert_consistent, drain, queue_import

SQLITE_LENGTH_LIMIT = 16_000
MANY_LONG_EMAILS = tuple(f"{'x' * 240}.{n}@example.com" for n in range(80))  # ~20 kB of JSON


@dataclass(frozen=True)
class Refusing:
    """A database that refuses ``poison`` (a contact normalization accepts), and why."""

    url: str
    poison: IncomingContact
    error: str  # the driver error the detail names
    prepare: Callable[[Engine], None] = lambda engine: None


@pytest.fixture
def latin1_url(pg_admin: str) -> Iterator[str]:
    name = f"t_latin1_{uuid.uuid4().hex[:12]}"
    create = "CREATE DATABASE {} ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"
    with psycopg.connect(pg_admin, autocommit=True) as conn:
        conn.execute(sql.SQL(create).format(sql.Identifier(name)))
    url = pg_admin.rsplit("/", 1)[0] + "/" + name
    engine = create_db_engine(url)
    upgrade_database(engine)
    engine.dispose()
    yield url
    with psycopg.connect(pg_admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def _limit_sqlite_length(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _limit(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, SQLITE_LENGTH_LIMIT)

    engine.dispose()  # connections made before the listener do not have the limit


JAPANESE = IncomingContact("people/c2", "山田 太郎", ("shared@example.com",))


@pytest.fixture(
    params=[
        "sqlite-length-limit",
        pytest.param("postgres-latin1-client", marks=pytest.mark.postgres),
        pytest.param("postgres-latin1-server", marks=pytest.mark.postgres),
    ]
)
def refusing(request: pytest.FixtureRequest) -> Refusing:
    if request.param == "sqlite-length-limit":
        url = str(request.getfixturevalue("sqlite_database_url"))
        poison = IncomingContact("people/c2", "Many", ("shared@example.com", *MANY_LONG_EMAILS))
        return Refusing(url, poison, "DataError: string or blob too big", _limit_sqlite_length)
    url = str(request.getfixturevalue("latin1_url"))
    if request.param == "postgres-latin1-server":
        return Refusing(url + "?client_encoding=utf8", JAPANESE, "UntranslatableCharacter")
    return Refusing(url, JAPANESE, "UnicodeEncodeError: 'latin-1' codec can't encode")


def settings_on(url: str, sandbox: RunningSandbox, **overrides: Any) -> Settings:
    return Settings(
        contact_import_env="development",
        database_url=url,
        google_people_api_url=sandbox.base_url,
        microsoft_graph_api_url=sandbox.base_url,
        **overrides,
    )


def audit(engine: Engine) -> dict[str, tuple[str, str | None]]:
    ic = imported_contacts.c
    with engine.connect() as conn:
        rows = conn.execute(select(ic.provider_contact_id, ic.action, ic.detail))
        return {pcid: (action, detail) for pcid, action, detail in rows}


def test_a_value_the_database_refuses_fails_only_its_contact(
    refusing: Refusing, sandbox: RunningSandbox
) -> None:
    page = [
        IncomingContact("people/c1", "Ada", ("ada@example.com",)),
        refusing.poison,  # shares an address with c3
        IncomingContact("people/c3", "Shared Person", ("shared@example.com",)),
        IncomingContact("people/c4"),  # nothing to import: skipped
        IncomingContact("people/c5", "Nul", ("n\x00ul@example.com",)),  # normalization fails it
        IncomingContact("people/c6", "A L", ("ADA@example.com",), (PhoneInput("(415) 555-0134"),)),
    ]
    incoming = [normalize_contact(contact, "US") for contact in page]
    with Runtime.build(settings_on(refusing.url, sandbox)) as rt:
        refusing.prepare(rt.engine)
        job, _ = rt.jobs.create("user-r", "google")
        (claimed,) = rt.jobs.claim("worker-r", 1).jobs

        def store() -> PageCounts:
            page = PageWrite(claimed, incoming, next_cursor="page-2")
            return write_page(rt.engine, rt.grants, page, lease_seconds=30, webhooks=False).counts

        counts = store()
        replayed = store()  # the same page again: nothing counts twice, the refused one neither
        rows, after = audit(rt.engine), rt.jobs.get(job.id)
        with rt.engine.connect() as conn:
            c = contacts.c
            rows_stored = conn.execute(select(c.display_name, c.emails, c.phones))
            stored = {row.display_name: (row.emails, row.phones) for row in rows_stored}
            keys = set(conn.execute(select(contact_match_keys.c.key)).scalars())

    assert counts == PageCounts(created=2, updated=1, skipped=1, failed=2)
    assert replayed == PageCounts()
    assert {pcid: action for pcid, (action, _) in rows.items()} == {
        "people/c1": "created",
        "people/c2": "failed",
        "people/c3": "created",  # not merged into the contact that was refused
        "people/c4": "skipped",
        "people/c5": "failed",
        "people/c6": "updated",  # merged into c1: the phone is new
    }
    detail = rows["people/c2"][1] or ""
    assert detail.startswith("not stored: ")
    assert refusing.error in detail
    assert rows["people/c5"][1] == "an email address contains a control character (U+0000)"
    assert stored == {
        "Ada": (["ada@example.com"], ["(415) 555-0134"]),
        "Shared Person": (["shared@example.com"], []),
    }  # fmt: skip
    assert "email:" + MANY_LONG_EMAILS[0] not in keys  # nothing of the refused contact
    assert (after.processed_contacts, after.failed_contacts) == (6, 2)
    assert (after.status.value, after.page_cursor) == ("processing", "page-2")
    assert after.locked_by == claimed.lease.locked_by  # the lease still holds


def _latin1(person: dict[str, Any]) -> bool:
    texts = [name.get("displayName", "") for name in person.get("names", [])]
    texts += [field["value"] for field in person.get("emailAddresses", [])]
    texts += [field["value"] for field in person.get("phoneNumbers", [])]
    try:
        "".join(texts).encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


@pytest.mark.postgres
@pytest.mark.parametrize("query", ["", "?client_encoding=utf8"], ids=["client", "server"])
def test_an_import_into_a_latin1_database_fails_only_what_it_cannot_hold(
    latin1_url: str, sandbox: RunningSandbox, query: str
) -> None:
    size, seed = 600, 31
    with Runtime.build(settings_on(latin1_url + query, sandbox, page_size=100)) as rt:
        job = queue_import(rt, sandbox, "latin", size=size, seed=seed)
        drain(rt)
        done = rt.jobs.get(job.id)
        assert_consistent(rt.engine, done, size)
        rows = audit(rt.engine)
        with rt.engine.connect() as conn:
            keys = set(conn.execute(select(contact_match_keys.c.key)).scalars())

    book = {person["resourceName"]: person for person in generate_book(size, seed)}
    failed = {pcid for pcid, (action, _) in rows.items() if action == "failed"}
    assert done.attempts == 1
    assert done.failed_contacts == len(failed) > 0  # the book has Japanese and Russian names
    assert not any(_latin1(book[pcid]) for pcid in failed)
    assert all(rows[pcid][0] != "failed" for pcid, person in book.items() if _latin1(person))
    assert all((rows[pcid][1] or "").startswith("not stored: ") for pcid in failed)
    kept = [person for pcid, person in book.items() if pcid not in failed]
    emails = {"email:" + f["value"].lower() for p in kept for f in p.get("emailAddresses", [])}
    assert emails <= keys
