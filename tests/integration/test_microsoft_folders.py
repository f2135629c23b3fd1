"""Every Microsoft contact folder, nested, each with its own delta link: the sandbox's folders,
MicrosoftContactsSource walking them, and imports through the real importer on both backends."""

from __future__ import annotations

import itertools
import json
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from contact_import.domain.job import JobStatus
from contact_import.errors import CursorExpired, RequestRejected
from contact_import.providers.base import ContactPage
from contact_import.providers.graph_folders import DEFAULT_FOLDER, decode_sync_state
from contact_import.providers.microsoft import MicrosoftContactsSource
from contact_import.runner.importer import ImportBudget, Importer, Outcome
from contact_import.runner.tick import run_tick
from contact_import.runtime import Runtime
from contact_import.sandbox.accounts import Account
from contact_import.sandbox.folder_tree import ROOT_ID, FolderTree
from contact_import.sandbox.graph import graph_contact_id
from contact_import.sandbox.server import RunningSandbox
from contact_import.settings import Settings
from contact_import.store.jobs import Job
from contact_import.store.schema import contacts, imported_contacts
from tests.helpers import Counts, assert_consistent, drain, queue_import, stored_state
from tests.integration.test_import_flow import _Crash, _crashing_after

# Three levels (Work/Team/Core), an empty leaf (Work/Empty), an empty parent of a full child
# (Archive), and the default folder (weight 1) beside them.
FOLDERS = {
    "Work": 3, "Work/Team": 2, "Work/Team/Core": 1, "Work/Empty": 0,
    "Family": 2, "Family/Kids": 1, "Archive": 0, "Archive/2019": 1,
}  # fmt: skip
BOOK = 1500
SELECT = "id,displayName,parentFolderId"


def folder_account(sandbox: RunningSandbox, size: int = BOOK, seed: int = 21) -> str:
    return sandbox.state.add_account(size=size, seed=seed, folders=FolderTree(FOLDERS))


def account_of(sandbox: RunningSandbox, token: str) -> Account:
    account = sandbox.state.account(token)
    assert account is not None
    return account


def folder_id(sandbox: RunningSandbox, token: str, path: str) -> str:
    found = account_of(sandbox, token).folders.by_path(path)
    assert found is not None
    return found


def source_of(
    client: httpx.Client, sandbox: RunningSandbox, token: str, **options: Any
) -> MicrosoftContactsSource:
    return MicrosoftContactsSource(client, api_url=sandbox.base_url, access_token=token, **options)


def walk(source: MicrosoftContactsSource, cursor: str | None = None) -> list[ContactPage]:
    pages = [source.fetch_page(cursor)]
    while pages[-1].next_cursor is not None:
        pages.append(source.fetch_page(pages[-1].next_cursor))
    return pages


def ids_of(pages: list[ContactPage]) -> list[str]:
    return [contact.provider_contact_id for page in pages for contact in page.contacts]


def folder_counts(sandbox: RunningSandbox, token: str, names: list[str]) -> Counter[str]:
    tree = account_of(sandbox, token).folders
    return Counter(tree.folder_of(name) for name in names)


def get(client: httpx.Client, url: str, token: str, **params: str) -> httpx.Response:
    return client.get(url, params=params, headers={"Authorization": f"Bearer {token}"})


# --- the sandbox serves Graph's folders ---------------------------------------------------------


def test_folders_and_child_folders_in_graphs_shape(
    client: httpx.Client, sandbox: RunningSandbox
) -> None:
    token = folder_account(sandbox, size=10)
    base = sandbox.base_url + "/v1.0/me/contactFolders"
    first = get(client, base, token, **{"$top": "2", "$select": SELECT}).json()
    assert first["@odata.context"].endswith("/contactFolders")
    assert [f["displayName"] for f in first["value"]] == ["Work", "Family"]
    assert {f["parentFolderId"] for f in first["value"]} == {ROOT_ID}
    assert set(first["value"][0]) == {"id", "displayName", "parentFolderId"}
    rest = client.get(first["@odata.nextLink"], headers={"Authorization": f"Bearer {token}"})
    assert [f["displayName"] for f in rest.json()["value"]] == ["Archive"]
    assert "@odata.nextLink" not in rest.json()

    work = first["value"][0]["id"]
    children = get(client, f"{base}/{work}/childFolders", token).json()
    assert [f["displayName"] for f in children["value"]] == ["Team", "Empty"]
    assert {f["parentFolderId"] for f in children["value"]} == {work}
    missing = get(client, f"{base}/AAMkNoSuchFolder/childFolders", token)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "ErrorItemNotFound"
    assert get(client, base, token, **{"$top": "0"}).status_code == 400


def test_each_folder_delta_lists_its_own_people_and_tokens_stay_in_their_folder(
    client: httpx.Client, sandbox: RunningSandbox
) -> None:
    token = folder_account(sandbox, size=300)
    book = sandbox.state.book(account_of(sandbox, token)).people
    filed = folder_counts(sandbox, token, [p["resourceName"] for p in book])
    team = folder_id(sandbox, token, "Work/Team")
    url = sandbox.base_url + f"/v1.0/me/contactFolders/{team}/contacts/delta"
    body = get(client, url, token).json()
    listed = list(body["value"])
    while "@odata.nextLink" in body:
        body = client.get(body["@odata.nextLink"], headers={"Authorization": f"Bearer {token}"})
        body = body.json()
        listed += body["value"]
    assert len(listed) == filed[team] > 0
    assert "@odata.deltaLink" in body
    # A delta link of Work/Team is no token of the default folder.
    token_of_team = httpx.URL(body["@odata.deltaLink"]).params["$deltatoken"]
    default = sandbox.base_url + "/v1.0/me/contactFolders/contacts/contacts/delta"
    assert get(client, default, token, **{"$deltatoken": token_of_team}).status_code == 410
    # /me/contacts, as in Graph, is the default folder only.
    contacts = get(client, sandbox.base_url + "/v1.0/me/contacts", token, **{"$top": "1000"})
    assert len(contacts.json()["value"]) == filed[ROOT_ID]


# --- the source walks every folder --------------------------------------------------------------


def test_a_full_listing_reads_every_folder_once_and_keeps_a_delta_link_for_each(
    client: httpx.Client, sandbox: RunningSandbox
) -> None:
    token = folder_account(sandbox)
    book = sandbox.state.book(account_of(sandbox, token)).people
    pages = walk(source_of(client, sandbox, token, page_size=100))

    ids = ids_of(pages)
    assert len(ids) == len(set(ids)) == BOOK
    assert set(ids) == {graph_contact_id(p["resourceName"]) for p in book}
    filed = folder_counts(sandbox, token, [p["resourceName"] for p in book])
    assert len(filed) == 7  # six folders with people besides the default one: spread for real
    assert pages[-1].sync_token is not None
    links = decode_sync_state(pages[-1].sync_token)
    tree = account_of(sandbox, token).folders
    assert set(links) == {DEFAULT_FOLDER} | {folder_id(sandbox, token, path) for path in FOLDERS}
    assert tree.resolve(DEFAULT_FOLDER) == ROOT_ID
    assert all(link.startswith(sandbox.base_url) for link in links.values())
    assert [page.sync_token is None for page in pages[:-1]] == [True] * (len(pages) - 1)


def test_an_old_single_delta_link_reads_as_the_default_folders(
    client: httpx.Client, sandbox: RunningSandbox
) -> None:
    token = folder_account(sandbox, size=400)
    tree = account_of(sandbox, token).folders
    links = decode_sync_state(walk(source_of(client, sandbox, token))[-1].sync_token)
    old = links[DEFAULT_FOLDER]  # what an earlier version stored: one bare delta link
    assert not old.startswith("{")
    modified = sandbox.state.change_book(token, modified=30, seed=4)["modified"]

    listed = ids_of(walk(source_of(client, sandbox, token, sync_token=old)))
    # The default folder's changes, and every other folder in full (no link kept for them).
    book = sandbox.state.book(account_of(sandbox, token)).people
    outside = [p["resourceName"] for p in book if tree.folder_of(p["resourceName"]) != ROOT_ID]
    inside = [name for name in modified if tree.folder_of(name) == ROOT_ID]
    assert inside  # some of the 30 edits are in the default folder
    assert len(listed) == len(set(listed)) == len(outside) + len(inside)
    assert set(listed) == {graph_contact_id(name) for name in outside + inside}


def test_a_folder_deleted_during_the_walk_is_left_out(
    client: httpx.Client, sandbox: RunningSandbox
) -> None:
    token = folder_account(sandbox, size=600)
    source = source_of(client, sandbox, token, page_size=50)
    pages = [source.fetch_page(None)]
    while not (pages[-1].next_cursor or "").startswith("{"):  # until the folders are listed
        pages.append(source.fetch_page(pages[-1].next_cursor))
    family = folder_id(sandbox, token, "Family")
    kids = folder_id(sandbox, token, "Family/Kids")
    account_of(sandbox, token).folders.delete("Family")  # and Family/Kids with it

    pages += walk(source, pages[-1].next_cursor)
    links = decode_sync_state(pages[-1].sync_token)
    assert family not in links
    assert kids not in links
    assert folder_id(sandbox, token, "Work/Team/Core") in links
    book = sandbox.state.book(account_of(sandbox, token)).people
    filed = folder_counts(sandbox, token, [p["resourceName"] for p in book])
    assert filed[family]
    assert filed[kids]
    assert len(ids_of(pages)) == 600 - filed[family] - filed[kids]


def test_a_stored_state_that_does_not_read_is_cursor_expired(
    client: httpx.Client, sandbox: RunningSandbox
) -> None:
    token = folder_account(sandbox, size=5)
    for broken in ('{"v":2,"folders":[]}', '{"v":9,"folders":{}}', "{not json"):
        with pytest.raises(CursorExpired):
            source_of(client, sandbox, token, sync_token=broken).fetch_page(None)
        with pytest.raises(CursorExpired):
            source_of(client, sandbox, token).fetch_page(broken)


def test_links_in_a_stored_cursor_or_state_are_pinned_to_the_api_host(
    client: httpx.Client, sandbox: RunningSandbox
) -> None:
    token = folder_account(sandbox, size=5)
    foreign = "https://attacker.example/v1.0/me/contactFolders/x/contacts/delta?%24deltatoken=1"
    state = json.dumps({"v": 2, "folders": {DEFAULT_FOLDER: foreign}})
    cursor = json.dumps({"v": 2, "at": ["AAMkF1", foreign], "todo": [], "done": {}})
    before = account_of(sandbox, token).requests
    with pytest.raises(RequestRejected):
        source_of(client, sandbox, token, sync_token=state).fetch_page(None)
    with pytest.raises(RequestRejected):
        source_of(client, sandbox, token).fetch_page(cursor)
    assert account_of(sandbox, token).requests == before


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
