"""MicrosoftContactsSource against the sandbox over loopback: real HTTP, no mocked client.

What Graph alone does (delta links, empty pages, $select/$top, links to other hosts); what
every provider does alike is in test_provider_sources.py."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from contact_import.domain.contact import IncomingContact, PhoneInput
from contact_import.errors import (
    AccessTokenExpired,
    CursorExpired,
    InsufficientScope,
    MalformedResponse,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
    RequestRejected,
)
from contact_import.providers.base import ContactPage
from contact_import.providers.google import GoogleContactsSource
from contact_import.providers.microsoft import (
    CONTACT_FIELDS,
    DELTA_PATH,
    MicrosoftContactsSource,
    error_for_response,
    parse_contacts,
)
from contact_import.runtime import Runtime
from contact_import.sandbox.accounts import Faults
from contact_import.sandbox.server import RunningSandbox
from tests import helpers
from tests.helpers import (
    assert_consistent,
    assert_secret_kept,
    contacts_of,
    drain,
    list_pages,
    queue_import,
)

CONTACTS = "/v1.0/me/contacts"


def make_source(
    client: httpx.Client, sandbox: RunningSandbox, token: str, **options: Any
) -> MicrosoftContactsSource:
    return MicrosoftContactsSource(client, api_url=sandbox.base_url, access_token=token, **options)


def requests_of(sandbox: RunningSandbox, token: str) -> int:
    account = sandbox.state.account(token)
    assert account is not None
    return account.requests


def email_keys(contacts: list[IncomingContact]) -> set[str]:
    return {email.lower() for contact in contacts for email in contact.emails}


def raw_get(
    client: httpx.Client, sandbox: RunningSandbox, token: str, **params: str
) -> httpx.Response:
    return helpers.raw_get(client, sandbox.base_url + CONTACTS, token, **params)


# --- listing -------------------------------------------------------------------------------------


def test_the_same_people_as_the_google_listing_of_the_account(
    client: httpx.Client, sandbox: RunningSandbox
) -> None:
    token = sandbox.state.add_account(size=2345, seed=5)
    google = contacts_of(list_pages(GoogleContactsSource(
        client, api_url=sandbox.base_url, access_token=token
    )))  # fmt: skip
    microsoft = contacts_of(list_pages(make_source(client, sandbox, token)))

    assert email_keys(microsoft) == email_keys(google)
    for ours, theirs in zip(microsoft, google, strict=True):
        assert ours.display_name == theirs.display_name
        assert ours.emails == theirs.emails
        assert [p.value for p in ours.phones] == [p.value for p in theirs.phones]
        assert all(phone.canonical is None for phone in ours.phones)  # Graph has no E.164 form
    assert any(not c.emails and c.phones for c in microsoft)
    assert any(not c.display_name.isascii() for c in microsoft)


def test_empty_pages_with_a_next_link_are_followed(
    client: httpx.Client, sandbox: RunningSandbox
) -> None:
    token = sandbox.state.add_account(size=2345, seed=6, faults=Faults(empty_page_every=2))
    pages = list_pages(make_source(client, sandbox, token, page_size=100))

    ids = {contact.provider_contact_id for contact in contacts_of(pages)}
    assert len(ids) == len(contacts_of(pages)) == 2345
    empty = [page for page in pages if not page.contacts]
    assert len(empty) == 23  # every second request: one between each two of the 24 real pages
    assert all(page.next_cursor and page.sync_token is None for page in empty)


def test_an_empty_books_sync_token_is_a_delta_link(
    client: httpx.Client, sandbox: RunningSandbox
) -> None:
    token = sandbox.state.add_account(size=0)
    page = make_source(client, sandbox, token).fetch_page(None)
    assert page == ContactPage(
        contacts=[], next_cursor=None, total=None, sync_token=page.sync_token
    )
    assert page.sync_token is not None
    assert page.sync_token.startswith(sandbox.base_url + DELTA_PATH + "?%24deltatoken=")


# --- the sandbox speaks Graph's protocol --------------------------------------------------------


def test_top_defaults_to_10_and_links_are_absolute_with_skip(
    client: httpx.Client, sandbox: RunningSandbox
) -> None:
    token = sandbox.state.add_account(size=25)
    body = raw_get(client, sandbox, token).json()
    assert len(body["value"]) == 10
    assert "@odata.count" not in body
    assert body["@odata.context"].startswith(sandbox.base_url + "/v1.0/$metadata#users(")
    next_link = httpx.URL(body["@odata.nextLink"])
    assert str(next_link).startswith(sandbox.base_url + CONTACTS)
    assert next_link.params["$skip"] == "10"


def test_select_and_count(client: httpx.Client, sandbox: RunningSandbox) -> None:
    token = sandbox.state.add_account(size=30)
    body = raw_get(
        client,
        sandbox,
        token,
        **{"$top": "30", "$select": "displayName,jobTitle", "$count": "true"},
    ).json()
    assert body["@odata.count"] == 30
    assert "@odata.nextLink" not in body
    for contact in body["value"]:
        assert set(contact) == {"@odata.etag", "id", "displayName", "jobTitle"}
        assert contact["jobTitle"] is None


@pytest.mark.parametrize(
    "params",
    [{"$top": "0"}, {"$top": "1001"}, {"$top": "many"}, {"$skip": "-1"}, {"$select": "mood"},
     {"$count": "maybe"}],
)  # fmt: skip
def test_bad_queries_are_graph_style_400s(
    client: httpx.Client, sandbox: RunningSandbox, params: dict[str, str]
) -> None:
    token = sandbox.state.add_account(size=5)
    response = raw_get(client, sandbox, token, **params)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"]
    assert error["message"]
    assert error["innerError"]["request-id"]


def test_a_missing_token_is_a_graph_style_401(
    client: httpx.Client, sandbox: RunningSandbox
) -> None:
    response = client.get(sandbox.base_url + CONTACTS)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "InvalidAuthenticationToken"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


# --- errors the source raises --------------------------------------------------------------------


def test_a_next_link_to_another_host_is_refused_before_any_request(
    client: httpx.Client, sandbox: RunningSandbox
) -> None:
    token = sandbox.state.add_account(size=300)
    source = make_source(client, sandbox, token, page_size=100)
    cursor = source.fetch_page(None).next_cursor
    assert cursor is not None
    before = requests_of(sandbox, token)
    foreign = [
        cursor.replace("127.0.0.1", "attacker.example"),
        cursor.replace("http://", "https://"),
        "/v1.0/me/contacts?%24skip=100",
        "http://[not a url",
    ]
    for link in foreign:
        with pytest.raises(RequestRejected) as raised:
            source.fetch_page(link)
        assert_secret_kept(raised.value, token)
    assert requests_of(sandbox, token) == before


def test_a_next_link_to_another_host_in_a_body_is_not_returned(
    sandbox: RunningSandbox,
) -> None:
    # The sandbox builds its links from the Host header, so this client makes it send a link to
    # a host of the client's choosing: what a compromised or spoofed answer would do.
    token = sandbox.state.add_account(size=300)
    with httpx.Client(timeout=30, headers={"Host": "attacker.example"}) as lying:
        source = make_source(lying, sandbox, token, page_size=100)
        with pytest.raises(RequestRejected) as raised:
            source.fetch_page(None)
    assert_secret_kept(raised.value, token)


def test_the_first_request_asks_for_what_the_importer_needs(sandbox: RunningSandbox) -> None:
    token = sandbox.state.add_account(size=3)
    sent: list[httpx.Request] = []
    with httpx.Client(timeout=30, event_hooks={"request": [sent.append]}) as recording:
        source = make_source(recording, sandbox, token, page_size=1)
        cursor = source.fetch_page(None).next_cursor
        assert cursor is not None
        source.fetch_page(cursor)
    first, second = sent
    assert first.url.path == DELTA_PATH  # the default Contacts folder, by its well-known name
    assert dict(first.url.params) == {"$select": CONTACT_FIELDS}  # no $top, no $count: delta
    assert first.headers["Prefer"] == "odata.maxpagesize=1"
    assert str(second.url) == cursor  # followed verbatim
    assert second.headers["Prefer"] == "odata.maxpagesize=1"


# --- end to end: the importer, a Microsoft grant and the sandbox --------------------------------


def test_a_microsoft_book_imports_through_the_real_importer(
    runtime: Runtime, sandbox: RunningSandbox
) -> None:
    faults = Faults(empty_page_every=3, rate_limit_every=5, retry_after=0)
    job = queue_import(runtime, sandbox, "mallory", size=2345, provider="microsoft", faults=faults)
    drain(runtime)
    done = runtime.jobs.get(job.id)
    state = assert_consistent(runtime.engine, done, 2345)
    assert done.provider == "microsoft"
    assert state.contacts == done.created_contacts
    assert done.created_contacts > 2000


# --- pure mapping: Graph bodies and answers -> our types -----------------------------------------


def graph_response(status: int, body: object = None, **headers: str) -> httpx.Response:
    request = httpx.Request("GET", "https://graph.microsoft.com" + CONTACTS)
    content = b"" if body is None else json.dumps(body).encode()
    return httpx.Response(status, content=content, headers=headers, request=request)


def graph_error(code: str, inner: str = "") -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": "m"}
    if inner:
        error["innerError"] = {"code": inner, "request-id": "r"}
    return {"error": error}


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (graph_response(429, graph_error("TooManyRequests"), **{"Retry-After": "3"}), RateLimited),
        (graph_response(503, graph_error("ServiceUnavailable")), ProviderUnavailable),
        (graph_response(504), ProviderUnavailable),
        (graph_response(509), RateLimited),
        (graph_response(401, graph_error("InvalidAuthenticationToken")), AccessTokenExpired),
        (graph_response(403, graph_error("ErrorAccessDenied")), InsufficientScope),
        (graph_response(403, graph_error("accessDenied", "activityLimitReached")), RateLimited),
        (graph_response(410), CursorExpired),
        (graph_response(400, graph_error("badRequest", "SyncStateNotFound")), CursorExpired),
        (graph_response(400, graph_error("ErrorInvalidUrlQuery")), RequestRejected),
        (graph_response(404, {"error": "not an object"}), RequestRejected),
        (graph_response(302), MalformedResponse),
    ],
)
def test_error_answers_map_to_the_error_tree(
    response: httpx.Response, expected: type[ProviderError]
) -> None:
    assert type(error_for_response(response, now=0.0)) is expected


def test_retry_after_and_the_scope_message() -> None:
    limited = error_for_response(graph_response(429, **{"Retry-After": "3"}), now=0.0)
    assert isinstance(limited, RateLimited)
    assert limited.retry_after == 3.0
    assert str(error_for_response(graph_response(403), now=0.0)) == (
        "Microsoft did not grant access to your contacts — "
        "reconnect your account and allow contacts access"
    )


@pytest.mark.parametrize(
    "body",
    [{"value": {"id": "x"}}, {"value": "x"}, {"@odata.nextLink": 3}],
)
def test_bodies_graph_would_never_send_are_malformed(body: dict[str, Any]) -> None:
    with pytest.raises(MalformedResponse):
        parse_contacts(body)


def test_a_contact_is_mapped_field_by_field() -> None:
    body = {
        "@odata.count": 1,
        "value": [
            {
                "id": "AAMkAD1",
                "displayName": None,
                "givenName": "Ada",
                "surname": "Lovelace",
                "emailAddresses": [{"name": "Ada", "address": " ada@example.com "}, {"name": "x"}],
                "businessPhones": ["+1 415 555 0100", ""],
                "homePhones": [],
                "mobilePhone": "(415) 555-0101",
            }
        ],
    }
    page = parse_contacts(body)
    assert page == ContactPage(
        contacts=[
            IncomingContact(
                provider_contact_id="AAMkAD1",
                display_name="Ada Lovelace",
                emails=("ada@example.com",),
                phones=(PhoneInput("+1 415 555 0100"), PhoneInput("(415) 555-0101")),
            )
        ],
        next_cursor=None,
        total=1,
    )
