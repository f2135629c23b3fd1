"""Dirty data is one contact's problem: whole imports of dirty books on SQLite and Postgres.

The expectations come from the knob's definition (written out below, as sandbox/dirty.py
documents it) and the clean book, never from what the importer reports.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import select

from contact_import.domain.contact import STAND_IN_PREFIX
from contact_import.runtime import Runtime
from contact_import.sandbox.accounts import Faults
from contact_import.sandbox.book import generate_book
from contact_import.sandbox.graph import graph_contact_id
from contact_import.sandbox.server import RunningSandbox
from contact_import.settings import Settings
from contact_import.store.jobs import Job
from contact_import.store.schema import contact_match_keys, contacts
from tests.helpers import assert_consistent, audit_rows, drain

SIZE, SEED, EVERY = 1000, 29, 9
KINDS = [
    "nul_email", "nul_name", "surrogate_name", "no_id", "plus_phone", "control_chars",
    "surrogate_email",
]  # fmt: skip
FAILING = {"nul_email", "no_id", "surrogate_email"}
PROVIDER_ID: dict[str, Callable[[str], str]] = {
    "google": lambda resource_name: resource_name,
    "microsoft": graph_contact_id,
}


def kind_at(index: int) -> str | None:
    """Persons number EVERY, 2*EVERY, ... (from 1) are dirty, the kinds in turn."""
    if (index + 1) % EVERY:
        return None
    return KINDS[((index + 1) // EVERY - 1) % len(KINDS)]


def indices(*kinds: str) -> list[int]:
    return [i for i in range(SIZE) if kind_at(i) in kinds]


def queue(
    rt: Runtime, sandbox: RunningSandbox, user: str, provider: str, faults: Faults
) -> tuple[Job, str]:
    token = sandbox.state.add_account(size=SIZE, seed=SEED, faults=faults)
    grant_id = rt.grants.create(user, provider, access_token=token)
    job, created = rt.jobs.create(user, provider, grant_id)
    assert created
    return job, token


def audit(rt: Runtime, job: Job) -> dict[str, tuple[str, UUID | None, str | None]]:
    return audit_rows(rt.engine, job.id)


def stored_contacts(rt: Runtime, user: str) -> dict[UUID, Any]:
    c = contacts.c
    with rt.engine.connect() as conn:
        rows = conn.execute(
            select(c.id, c.display_name, c.emails, c.phones).where(c.user_id == user)
        )
        return {row.id: row for row in rows}


def stored_keys(rt: Runtime, user: str) -> set[str]:
    k = contact_match_keys.c
    with rt.engine.connect() as conn:
        return set(conn.execute(select(k.key).where(k.user_id == user)).scalars())


def cleaned(name: str) -> str:
    """What the knob's dirt in a name must become: controls gone, the surrogate U+FFFD."""
    for control in ("\x00", "\x07", "\x7f"):
        name = name.replace(control, "")
    return " ".join(name.replace("\ud800", "\ufffd").split())


def served_people(sandbox: RunningSandbox, token: str) -> list[dict[str, Any]]:
    """The Persons the sandbox served (the dirty ones as they went out)."""
    account = sandbox.state.account(token)
    assert account is not None
    return sandbox.state.book(account).people


@pytest.mark.parametrize("provider", ["google", "microsoft"])
def test_a_dirty_book_imports_with_exactly_the_bad_contacts_failed(
    settings_for: Callable[..., Settings], sandbox: RunningSandbox, provider: str
) -> None:
    user = f"dirty-{provider}"
    with Runtime.build(settings_for(page_size=200)) as rt:
        job, token = queue(rt, sandbox, user, provider, Faults(dirty_every=EVERY))
        drain(rt)
        done = rt.jobs.get(job.id)
        assert_consistent(rt.engine, done, SIZE)  # completed, exact counts, one row each
        rows, stored, keys = audit(rt, done), stored_contacts(rt, user), stored_keys(rt, user)
        served = served_people(sandbox, token)

    clean = generate_book(SIZE, SEED)
    to_id = PROVIDER_ID[provider]
    assert done.attempts == 1  # no page was retried
    assert done.failed_contacts == len(indices(*FAILING))
    failed = {pcid for pcid, (action, _, _) in rows.items() if action == "failed"}
    real_ids = {to_id(clean[i]["resourceName"]) for i in indices("nul_email", "surrogate_email")}
    assert {pcid for pcid in failed if not pcid.startswith(STAND_IN_PREFIX)} == real_ids
    assert sum(pcid.startswith(STAND_IN_PREFIX) for pcid in failed) == len(indices("no_id"))
    assert all(rows[pcid][2] for pcid in failed)  # each says why

    # Every good contact is stored: its audit row points at a stored contact, its emails are
    # keys of this user (the plus_phone people were sent without their emails).
    good = [i for i in range(SIZE) if kind_at(i) not in FAILING]
    for i in good:
        action, contact_id, _ = rows[to_id(clean[i]["resourceName"])]
        assert action in {"created", "updated", "skipped"}
        assert contact_id is None or contact_id in stored
    emails = {
        "email:" + field["value"].strip().lower()
        for i in good
        if kind_at(i) != "plus_phone"
        for field in clean[i].get("emailAddresses", [])
    }
    assert emails <= keys

    # Names with dirt are stored cleaned; the "+" people are one contact each.
    checked: Counter[str] = Counter()
    for i in indices("nul_name", "surrogate_name", "control_chars"):
        action, contact_id, _ = rows[to_id(clean[i]["resourceName"])]
        if action == "created":
            assert contact_id is not None
            expected = cleaned(served[i]["names"][0]["displayName"])
            assert stored[contact_id].display_name == expected
            checked[str(kind_at(i))] += 1
    assert set(checked) == {"nul_name", "surrogate_name", "control_chars"}
    plus = [rows[to_id(clean[i]["resourceName"])] for i in indices("plus_phone")]
    assert len(plus) >= 2
    assert [action for action, _, _ in plus] == ["created"] * len(plus)
    assert len({contact_id for _, contact_id, _ in plus}) == len(plus)
    assert not any(key.startswith("phone:+") and len(key) <= len("phone:+12") for key in keys)

    for row in stored.values():  # nothing unstorable slipped through
        for text in (row.display_name, *row.emails, *row.phones):
            assert "\x00" not in text
            text.encode("utf-8")


@pytest.mark.parametrize("provider", ["google", "microsoft"])
def test_a_dirty_book_listed_again_from_the_top_counts_each_contact_once(
    settings_for: Callable[..., Settings], sandbox: RunningSandbox, provider: str
) -> None:
    """The page token expires on the 3rd request: pages 1-2 come again, stand-in ids too."""
    with Runtime.build(settings_for(page_size=200)) as rt:
        faults = Faults(dirty_every=EVERY, expire_page_token_at=3)
        job, _ = queue(rt, sandbox, f"relisted-{provider}", provider, faults)
        drain(rt)
        done = rt.jobs.get(job.id)
        assert_consistent(rt.engine, done, SIZE)
    assert done.failed_contacts == len(indices(*FAILING))
