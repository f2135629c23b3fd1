"""Two imports of one user's address book at once, on two worker processes: no duplicates."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime

import pytest
from sqlalchemy import func, select

from contact_import.domain.contact import email_key
from contact_import.runtime import Runtime
from contact_import.sandbox.accounts import Faults
from contact_import.sandbox.book import generate_book
from contact_import.sandbox.server import RunningSandbox
from contact_import.settings import Settings
from contact_import.store.schema import contact_match_keys, contacts, imported_contacts
from tests.helpers import SettingsFor, assert_consistent, drain, queue_import

pytestmark = pytest.mark.slow  # two real worker processes
CLI = [sys.executable, "-m", "contact_import"]
BOOK, SEED = 4000, 21


def _contacts_and_email_keys(rt: Runtime, user: str) -> tuple[int, set[str]]:
    with rt.engine.connect() as conn:
        n = conn.execute(
            select(func.count()).select_from(contacts).where(contacts.c.user_id == user)
        ).scalar_one()
        keys = set(
            conn.execute(
                select(contact_match_keys.c.key).where(
                    contact_match_keys.c.user_id == user,
                    contact_match_keys.c.key.like("email:%"),
                )
            ).scalars()
        )
    return n, keys


def _page_window(rt: Runtime, job_id: object) -> tuple[datetime, datetime]:
    stamp = imported_contacts.c.created_at
    with rt.engine.connect() as conn:
        first, last = conn.execute(
            select(func.min(stamp), func.max(stamp)).where(
                imported_contacts.c.import_job_id == job_id
            )
        ).one()
    return first, last


def test_google_and_microsoft_imports_of_one_user_on_two_workers(
    settings_for: SettingsFor, sandbox: RunningSandbox, subprocess_env: dict[str, str]
) -> None:
    settings: Settings = settings_for(page_size=200)
    env = subprocess_env | {"PAGE_SIZE": "200"}
    # Slow enough a provider that each import lasts well past the other worker's start-up
    # (20 pages of at least 60 ms; fetching ahead hides a faster provider's wait).
    slow = Faults(latency_ms=60)
    with Runtime.build(settings) as rt:
        # The same people, imported one after the other: what the result must look like.
        queue_import(rt, sandbox, "sequential", size=BOOK, seed=SEED, provider="google")
        drain(rt)
        queue_import(rt, sandbox, "sequential", size=BOOK, seed=SEED, provider="microsoft")
        drain(rt)
        google = queue_import(rt, sandbox, "both", size=BOOK, seed=SEED, faults=slow)
        microsoft = queue_import(
            rt, sandbox, "both", size=BOOK, seed=SEED, faults=slow, provider="microsoft"
        )
        workers = [
            subprocess.Popen([*CLI, "worker", "--once", "--concurrency", "1"], env=env)
            for _ in range(2)
        ]
        assert [w.wait(timeout=300) for w in workers] == [0, 0]
        g, m = rt.jobs.get(google.id), rt.jobs.get(microsoft.id)
        # They really overlapped: each worker (one job at a time) stored pages of its job
        # while the other was storing pages of the other job.
        (g_first, g_last), (m_first, m_last) = _page_window(rt, g.id), _page_window(rt, m.id)
        assert g_first < m_last
        assert m_first < g_last
        assert_consistent(rt.engine, g, BOOK)
        assert_consistent(rt.engine, m, BOOK)
        both, both_keys = _contacts_and_email_keys(rt, "both")
        sequential, sequential_keys = _contacts_and_email_keys(rt, "sequential")
    book_keys = {
        "email:" + key
        for person in generate_book(BOOK, SEED)
        for e in person.get("emailAddresses", [])
        if (key := email_key(e["value"])) is not None
    }
    assert both_keys == sequential_keys == book_keys  # every address, on exactly one contact
    assert both == sequential  # racing changed nothing: one contact per person
    assert g.created_contacts + m.created_contacts == both
