"""Every Microsoft contact folder, nested, each with its own delta link: the sandbox's folders
and MicrosoftContactsSource walking them (imports: ``test_microsoft_folder_imports``)."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import httpx
import pytest

from contact_import.errors import CursorExpired, RequestRejected
from contact_import.providers.base import ContactPage
from contact_import.providers.graph_folders import DEFAULT_FOLDER, decode_sync_state
from contact_import.providers.microsoft import MicrosoftContactsSource
from contact_import.sandbox.accounts import Account
from contact_import.sandbox.folder_tree import ROOT_ID, FolderTree
from contact_import.sandbox.graph import graph_contact_id
from contact_import.sandbox.server import RunningSandbox

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
