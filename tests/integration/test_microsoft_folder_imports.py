"""Microsoft books spread over nested folders, imported through the real importer on both
backends: exact counts, incremental changes per folder, folders that come and go, resumes."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable

import pytest
from sqlalchemy import select

from contact_import.domain.job import JobStatus
from contact_import.providers.graph_folders import DEFAULT_FOLDER, decode_sync_state
from contact_import.runner.importer import ImportBudget, Importer, Outcome
from contact_import.runner.tick import run_tick
from contact_import.runtime import Runtime
from contact_import.sandbox.graph import graph_contact_id
from contact_import.sandbox.server import RunningSandbox
from contact_import.settings import Settings
from contact_import.store.jobs import Job
from contact_import.store.schema import contacts, imported_contacts
from tests.helpers import Counts, assert_consistent, drain, queue_import, stored_state
from tests.integration.test_import_flow import _Crash, _crashing_after
from tests.integration.test_microsoft_folders import (
    BOOK,
    FOLDERS,
    account_of,
    folder_account,
    folder_counts,
    folder_id,
)

# --- imports through the real importer, on both backends ----------------------------------------


def queue_folder_import(rt: Runtime, sandbox: RunningSandbox, user: str, token: str) -> Job:
    grant_id = rt.grants.create(user, "microsoft", access_token=token)
    job, created = rt.jobs.create(user, "microsoft", grant_id)
    assert created
    return job


def match_keys(rt: Runtime, user_id: str) -> set[str]:
    """Every match key of the user's contacts; each is on one contact (a unique index)."""
    with rt.engine.connect() as conn:
        rows = conn.execute(select(contacts.c.match_keys).where(contacts.c.user_id == user_id))
        return {key for (keys,) in rows for key in keys}


def were_empty(rt: Runtime, job: Job, resource_names: list[str]) -> int:
    """How many of these people ``job`` skipped as empty: an edit (a new email) creates them."""
    ids = [graph_contact_id(name) for name in resource_names]
    with rt.engine.connect() as conn:
        rows = conn.execute(
            select(imported_contacts.c.provider_contact_id).where(
                imported_contacts.c.import_job_id == job.id,
                imported_contacts.c.provider_contact_id.in_(ids),
                imported_contacts.c.detail == "no name, email or phone",
            )
        )
        return len(rows.all())


def reimport(rt: Runtime, job: Job) -> Job:
    again, created = rt.jobs.create(job.user_id, "microsoft", job.grant_id)
    assert created
    drain(rt)
    done = rt.jobs.get(again.id)
    assert done.status is JobStatus.COMPLETED, done.error_message
    return done


def test_a_book_over_nested_folders_imports_every_contact_exactly_once(
    runtime: Runtime, sandbox: RunningSandbox
) -> None:
    job = queue_folder_import(runtime, sandbox, "fiona", folder_account(sandbox))
    flat = queue_import(runtime, sandbox, "flat", size=BOOK, seed=21, provider="microsoft")
    drain(runtime)
    done = runtime.jobs.get(job.id)
    state = assert_consistent(runtime.engine, done, BOOK)
    assert state.contacts == done.created_contacts
    # The same book in one folder: the same addresses and numbers, each on one contact (which
    # contact a duplicate merges into depends on the listing order, so the counts may differ).
    assert_consistent(runtime.engine, runtime.jobs.get(flat.id), BOOK)
    assert match_keys(runtime, "fiona") == match_keys(runtime, "flat")
    assert done.skipped_contacts + done.updated_contacts > 0  # duplicates across folders merged
    third = reimport(runtime, done)
    assert Counts.of(third).processed == 0  # nothing changed in any folder


def test_an_incremental_import_brings_exactly_the_changes_of_each_folder(
    runtime: Runtime, sandbox: RunningSandbox
) -> None:
    token = folder_account(sandbox, seed=22)
    first = queue_folder_import(runtime, sandbox, "gus", token)
    drain(runtime)
    before = stored_state(runtime.engine, "gus", first.id).contacts
    old_token = runtime.grants.get(first.grant_id).sync_token
    edited = sandbox.state.change_book(token, modified=6, deleted=4, seed=3)
    team = sandbox.state.change_book(token, added=3, folder="Work/Team/Core")
    kids = sandbox.state.change_book(token, added=2, folder="Family/Kids")
    touched = folder_counts(sandbox, token, edited["modified"] + edited["deleted"])
    assert len(touched) >= 2  # the edits fall in several folders
    assert set(folder_counts(sandbox, token, team["added"] + kids["added"])) == {
        folder_id(sandbox, token, "Work/Team/Core"),
        folder_id(sandbox, token, "Family/Kids"),
    }

    second = reimport(runtime, first)
    empty = were_empty(runtime, first, edited["modified"])
    assert (second.processed_contacts, second.created_contacts) == (15, 5 + empty)
    assert (second.updated_contacts, second.skipped_contacts) == (6 - empty, 4)
    assert stored_state(runtime.engine, "gus", second.id).contacts == before + 5 + empty
    assert runtime.grants.get(first.grant_id).sync_token != old_token


def test_a_folder_added_between_imports_is_listed_in_full(
    runtime: Runtime, sandbox: RunningSandbox
) -> None:
    token = folder_account(sandbox, size=500, seed=23)
    first = queue_folder_import(runtime, sandbox, "hal", token)
    drain(runtime)
    account = account_of(sandbox, token)
    new = account.folders.add("Work/Team/Projects").id  # a fourth level, new
    added = sandbox.state.change_book(token, added=4, folder="Work/Team/Projects")
    assert set(folder_counts(sandbox, token, added["added"])) == {new}

    second = reimport(runtime, first)
    assert (second.processed_contacts, second.created_contacts) == (4, 4)
    links = decode_sync_state(runtime.grants.get(first.grant_id).sync_token)
    assert new in links
    account.folders.delete("Work/Team")  # with Core and Projects, and their people
    third = reimport(runtime, second)
    assert third.processed_contacts == 0  # their contacts stay here, as deleted ones do
    links = decode_sync_state(runtime.grants.get(first.grant_id).sync_token)
    assert new not in links
    assert folder_id(sandbox, token, "Work") in links


def test_expired_delta_links_list_every_folder_again_counting_each_contact_once(
    runtime: Runtime, sandbox: RunningSandbox
) -> None:
    token = folder_account(sandbox, size=700, seed=26)
    first = queue_folder_import(runtime, sandbox, "kim", token)
    drain(runtime)
    changed = sandbox.state.change_book(token, modified=5, added=7, deleted=3, seed=2)
    account_of(sandbox, token).faults.expire_sync_tokens = True  # every folder's link: 410

    second = reimport(runtime, first)
    live = 700 - 3 + 7
    empty = were_empty(runtime, first, changed["modified"])
    assert empty == 1  # this seed edits one empty contact: it is created, not updated
    assert second.processed_contacts == second.total_contacts == live
    assert (second.created_contacts, second.updated_contacts) == (7 + empty, 5 - empty)
    assert second.skipped_contacts == live - 12
    links = decode_sync_state(runtime.grants.get(first.grant_id).sync_token)
    assert len(links) == len(FOLDERS) + 1  # fresh links for next time


def tick_pages(rt: Runtime, pages: int) -> Outcome:
    """One tick whose budget lets exactly ``pages`` pages start (a clock of 3 reads a page)."""
    (claimed,) = rt.jobs.claim("ticker", 1).jobs
    clock = itertools.count().__next__
    return rt.importer.run(claimed, ImportBudget(deadline=3 * pages + 1, clock=clock))


def test_ticks_that_stop_mid_folder_resume_with_exact_counts(
    settings_for: Callable[..., Settings], sandbox: RunningSandbox
) -> None:
    with Runtime.build(settings_for(page_size=40)) as rt:
        reference = queue_folder_import(rt, sandbox, "ref", folder_account(sandbox, seed=24))
        drain(rt)
        job = queue_folder_import(rt, sandbox, "ida", folder_account(sandbox, seed=24))
        cursors: list[str] = []
        while (outcome := tick_pages(rt, 2)) is Outcome.CONTINUING:
            cursors.append(rt.jobs.get(job.id).page_cursor or "")
            assert len(cursors) < 100
        assert outcome is Outcome.COMPLETED
        walked = [json.loads(c) for c in cursors if c.startswith("{")]
        assert any(c["at"][1] for c in walked)  # stopped inside a folder other than the default
        assert len({c["at"][0] for c in walked}) >= 5  # ... in several of them
        done = rt.jobs.get(job.id)
        assert done.attempts == 1
        assert Counts.of(done) == Counts.of(rt.jobs.get(reference.id))
        assert_consistent(rt.engine, done, BOOK)
        links = decode_sync_state(rt.grants.get(done.grant_id).sync_token)
        assert len(links) == len(FOLDERS) + 1  # every folder's delta link, for next time


def test_a_worker_that_dies_mid_folder_is_resumed_from_its_checkpoint(
    settings_for: Callable[..., Settings], sandbox: RunningSandbox
) -> None:
    with Runtime.build(settings_for(lease_seconds=0.5, page_size=40)) as rt:
        reference = queue_folder_import(rt, sandbox, "ref", folder_account(sandbox, seed=25))
        drain(rt)
        job = queue_folder_import(rt, sandbox, "jo", folder_account(sandbox, seed=25))
        crashing = Importer(
            rt.engine, rt.jobs, _crashing_after(20, rt.importer._sources),
            lease_seconds=0.5, default_region="US", grants=rt.grants, metrics=rt.metrics,
        )  # fmt: skip
        (claimed,) = rt.jobs.claim("doomed", 1).jobs
        with pytest.raises(_Crash):
            crashing.run(claimed, budget=ImportBudget())
        stuck = rt.jobs.get(job.id)
        assert stuck.pages_done == 20
        at = json.loads(stuck.page_cursor or "")["at"]
        assert at[0] != DEFAULT_FOLDER  # it died in another folder
        time.sleep(0.6)  # the lease runs out
        run_tick(rt.jobs, rt.importer, metrics=rt.metrics, budget_seconds=60, max_jobs=1)
        done = rt.jobs.get(job.id)
        assert done.attempts == 2
        assert Counts.of(done) == Counts.of(rt.jobs.get(reference.id))
        assert_consistent(rt.engine, done, BOOK)
