"""The sandbox's sync tokens and delta links on the wire, as Google and Graph document them."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from contact_import.providers.google import PERSON_FIELDS
from contact_import.providers.microsoft import DELTA_PATH
from contact_import.sandbox.accounts import Faults
from contact_import.sandbox.graph import graph_contact_id
from contact_import.sandbox.server import RunningSandbox

CONNECTIONS = "/v1/people/me/connections"


def people(
    client: httpx.Client, sandbox: RunningSandbox, token: str, **params: str
) -> httpx.Response:
    query = {"personFields": PERSON_FIELDS, "requestSyncToken": "true"} | params
    headers = {"Authorization": f"Bearer {token}"}
    return client.get(sandbox.base_url + CONNECTIONS, params=query, headers=headers)


def delta(
    client: httpx.Client, sandbox: RunningSandbox, token: str, url: str = "", page_size: int = 0
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"}
    if page_size:
        headers["Prefer"] = f"odata.maxpagesize={page_size}"
    return client.get(url or sandbox.base_url + DELTA_PATH, headers=headers)


def google_sync_token(client: httpx.Client, sandbox: RunningSandbox, token: str) -> str:
    body = people(client, sandbox, token, pageSize="1000").json()
    assert "nextPageToken" not in body
    return str(body["nextSyncToken"])


def graph_delta_link(client: httpx.Client, sandbox: RunningSandbox, token: str) -> str:
    body = delta(client, sandbox, token, page_size=1000).json()
    assert "@odata.nextLink" not in body
    return str(body["@odata.deltaLink"])


# --- Google --------------------------------------------------------------------------------------


def test_google_lists_deleted_people_with_metadata_deleted_only(
    client: httpx.Client, sandbox: RunningSandbox
) -> None:
    token = sandbox.state.add_account(size=40, seed=41)
    sync_token = google_sync_token(client, sandbox, token)
    changed = sandbox.state.change_book(token, modified=1, deleted=2)

    body = people(client, sandbox, token, syncToken=sync_token).json()

    by_name = {person["resourceName"]: person for person in body["connections"]}
    assert set(by_name) == set(changed["modified"] + changed["deleted"])
    for name in changed["deleted"]:
        assert set(by_name[name]) == {"resourceName", "etag", "metadata"}
        assert by_name[name]["metadata"]["deleted"] is True
    assert "emailAddresses" in by_name[changed["modified"][0]]
    assert body["nextSyncToken"] != sync_token


def test_google_puts_next_sync_token_on_the_last_page_and_only_when_asked(
    client: httpx.Client, sandbox: RunningSandbox
) -> None:
    token = sandbox.state.add_account(size=150, seed=42)
    first = people(client, sandbox, token, pageSize="100").json()
    last = people(client, sandbox, token, pageSize="100", pageToken=first["nextPageToken"]).json()
    unasked = people(client, sandbox, token, pageSize="1000", requestSyncToken="false").json()

    assert "nextSyncToken" not in first
    assert "nextSyncToken" in last
    assert "nextPageToken" not in last
    assert "nextSyncToken" not in unasked


def test_google_page_tokens_of_a_sync_are_only_valid_with_the_same_sync_token(
    client: httpx.Client, sandbox: RunningSandbox
) -> None:
    token = sandbox.state.add_account(size=30, seed=43)
    sync_token = google_sync_token(client, sandbox, token)
    sandbox.state.change_book(token, added=5)
    first = people(client, sandbox, token, pageSize="2", syncToken=sync_token).json()
    page_token = first["nextPageToken"]

    without = people(client, sandbox, token, pageSize="2", pageToken=page_token)
    with_it = people(
        client, sandbox, token, pageSize="2", pageToken=page_token, syncToken=sync_token
    )

    assert without.status_code == 400
    assert without.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert "page token" in without.json()["error"]["message"]
    assert with_it.status_code == 200
    assert len(with_it.json()["connections"]) == 2


@pytest.mark.parametrize("expire", [True, False])
def test_google_answers_an_expired_or_unknown_sync_token_as_documented(
    client: httpx.Client, sandbox: RunningSandbox, expire: bool
) -> None:
    token = sandbox.state.add_account(size=10, seed=44)
    sync_token = google_sync_token(client, sandbox, token) if expire else "not-a-sync-token"
    account = sandbox.state.account(token)
    assert account is not None
    account.faults.expire_sync_tokens = expire

    response = people(client, sandbox, token, syncToken=sync_token)

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["message"].startswith("Sync token is expired.")
    assert error["details"][0]["@type"] == "type.googleapis.com/google.rpc.ErrorInfo"
    assert error["details"][0]["reason"] == "EXPIRED_SYNC_TOKEN"


def test_google_totals_count_the_listing(client: httpx.Client, sandbox: RunningSandbox) -> None:
    token = sandbox.state.add_account(size=60, seed=45)
    sync_token = google_sync_token(client, sandbox, token)
    sandbox.state.change_book(token, modified=2, added=3, deleted=1)

    full = people(client, sandbox, token).json()
    since = people(client, sandbox, token, syncToken=sync_token).json()

    assert full["totalItems"] == 62
    assert since["totalItems"] == len(since["connections"]) == 6


# --- Graph ---------------------------------------------------------------------------------------


def test_graph_delta_pages_follow_prefer_and_end_in_a_delta_link(
    client: httpx.Client, sandbox: RunningSandbox
) -> None:
    token = sandbox.state.add_account(size=25, seed=46)
    first = delta(client, sandbox, token, page_size=20)
    body = first.json()

    assert first.headers["Preference-Applied"] == "odata.maxpagesize=20"
    assert len(body["value"]) == 20
    assert "@odata.deltaLink" not in body
    assert "$skiptoken" in httpx.URL(body["@odata.nextLink"]).params
    last = delta(client, sandbox, token, body["@odata.nextLink"], page_size=20).json()
    assert len(last["value"]) == 5
    assert "@odata.nextLink" not in last
    assert "$deltatoken" in httpx.URL(last["@odata.deltaLink"]).params
    assert len(delta(client, sandbox, token).json()["value"]) == 10  # the default page size


def test_graph_delta_keeps_the_first_select_in_its_links(
    client: httpx.Client, sandbox: RunningSandbox
) -> None:
    token = sandbox.state.add_account(size=15, seed=47)
    url = sandbox.base_url + DELTA_PATH + "?$select=displayName"
    body = delta(client, sandbox, token, url).json()
    more = delta(client, sandbox, token, body["@odata.nextLink"]).json()

    for contact in body["value"] + more["value"]:
        assert set(contact) == {"@odata.type", "@odata.etag", "id", "displayName"}


def test_graph_lists_deleted_contacts_as_removed(
    client: httpx.Client, sandbox: RunningSandbox
) -> None:
    token = sandbox.state.add_account(size=40, seed=48)
    link = graph_delta_link(client, sandbox, token)
    changed = sandbox.state.change_book(token, added=1, deleted=2)

    body = delta(client, sandbox, token, link).json()

    by_id = {entry["id"]: entry for entry in body["value"]}
    assert set(by_id) == {graph_contact_id(n) for n in changed["added"] + changed["deleted"]}
    for name in changed["deleted"]:
        entry = by_id[graph_contact_id(name)]
        assert entry["@removed"] == {"reason": "deleted"}
        assert set(entry) == {"@odata.type", "id", "@removed"}
    assert body["@odata.deltaLink"] != link


@pytest.mark.parametrize("option", ["$top", "$count", "$filter", "$orderby", "$skip"])
def test_graph_delta_refuses_query_options_change_tracking_does_not_take(
    client: httpx.Client, sandbox: RunningSandbox, option: str
) -> None:
    token = sandbox.state.add_account(size=5, seed=49)
    response = delta(client, sandbox, token, sandbox.base_url + DELTA_PATH + f"?{option}=1")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "ErrorInvalidUrlQuery"


def test_graph_delta_answers_a_gone_delta_or_skip_token_with_410(
    client: httpx.Client, sandbox: RunningSandbox
) -> None:
    token = sandbox.state.add_account(size=30, seed=50, faults=Faults(expire_page_token_at=3))
    link = graph_delta_link(client, sandbox, token)  # request 1
    next_link = delta(client, sandbox, token, page_size=10).json()["@odata.nextLink"]  # 2
    account = sandbox.state.account(token)
    assert account is not None

    expired_page = delta(client, sandbox, token, next_link)  # 3: the fault
    account.faults.expire_sync_tokens = True
    expired_sync = delta(client, sandbox, token, link)
    forged = delta(client, sandbox, token, link[:-4] + "AAAA")

    for response in (expired_page, expired_sync, forged):
        assert response.status_code == 410
        assert response.json()["error"]["code"] == "SyncStateNotFound"
    assert delta(client, sandbox, token, next_link).status_code == 200  # the fault fired once


def test_graph_delta_only_knows_the_default_contacts_folder(
    client: httpx.Client, sandbox: RunningSandbox
) -> None:
    token = sandbox.state.add_account(size=5, seed=51)
    url = sandbox.base_url + DELTA_PATH.replace("/contacts/contacts/", "/AAMkFolder/contacts/")
    response = delta(client, sandbox, token, url)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "ErrorItemNotFound"


def test_graph_contacts_list_the_latest_version(
    client: httpx.Client, sandbox: RunningSandbox
) -> None:
    token = sandbox.state.add_account(size=10, seed=52)
    sandbox.state.change_book(token, added=3, deleted=4)
    headers = {"Authorization": f"Bearer {token}"}
    body = client.get(sandbox.base_url + "/v1.0/me/contacts?$top=100", headers=headers).json()
    assert len(body["value"]) == 9


# --- sandbox control -----------------------------------------------------------------------------


def test_books_change_over_http_too(client: httpx.Client, sandbox: RunningSandbox) -> None:
    token = sandbox.state.add_account(size=20, seed=53)
    account = sandbox.state.account(token)
    assert account is not None
    url = f"{sandbox.base_url}/_sandbox/accounts/{account.id}/changes"

    response = client.post(url, json={"modified": 1, "added": 2, "deleted": 3, "seed": 7})

    assert response.status_code == 200
    changed: dict[str, Any] = response.json()
    assert changed["version"] == 1
    assert [len(changed[kind]) for kind in ("modified", "added", "deleted")] == [1, 2, 3]
    assert client.post(url, json={"deleted": 99}).status_code == 400
    assert client.post(url, json={"moved": 1}).status_code == 400
    assert client.post(url.replace(account.id, "acct-0"), json={}).status_code == 404
