"""GoogleContactsSource against the sandbox over loopback: real HTTP, no mocked client.

What the People API alone does (personFields, page tokens, its error bodies); what every
provider does alike is in test_provider_sources.py."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
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
from contact_import.providers.google import (
    PERSON_FIELDS,
    GoogleContactsSource,
    error_for_response,
    parse_connections,
    person_to_contact,
)
from contact_import.providers.http import RetryPolicy, parse_retry_after
from contact_import.sandbox.server import RunningSandbox
from tests import helpers
from tests.helpers import assert_secret_kept

CONNECTIONS = "/v1/people/me/connections"


def make_source(
    client: httpx.Client, sandbox: RunningSandbox, token: str, **options: Any
) -> GoogleContactsSource:
    return GoogleContactsSource(client, api_url=sandbox.base_url, access_token=token, **options)


def list_all(source: GoogleContactsSource) -> tuple[list[IncomingContact], list[int | None]]:
    contacts: list[IncomingContact] = []
    totals: list[int | None] = []
    cursor: str | None = None
    while True:
        page = source.fetch_page(cursor)
        contacts += page.contacts
        totals.append(page.total)
        cursor = page.next_cursor
        if cursor is None:
            return contacts, totals


def book_of(sandbox: RunningSandbox, token: str) -> list[dict[str, Any]]:
    account = sandbox.state.account(token)
    assert account is not None
    return sandbox.state.book(account).people


def raw_get(
    client: httpx.Client, sandbox: RunningSandbox, token: str, **params: str
) -> httpx.Response:
    return helpers.raw_get(client, sandbox.base_url + CONNECTIONS, token, **params)


# --- listing -------------------------------------------------------------------------------------


def test_people_are_mapped_to_incoming_contacts(
    client: httpx.Client, sandbox: RunningSandbox
) -> None:
    token = sandbox.state.add_account(size=300, seed=11)
    contacts, _ = list_all(make_source(client, sandbox, token))

    for contact, person in zip(contacts, book_of(sandbox, token), strict=True):
        names = person.get("names", [])
        assert contact.display_name == (names[0]["displayName"] if names else "")
        assert contact.emails == tuple(e["value"] for e in person.get("emailAddresses", []))
        assert contact.phones == tuple(
            PhoneInput(p["value"], p.get("canonicalForm")) for p in person.get("phoneNumbers", [])
        )
        assert contact.deleted is False
    assert any(not c.emails and c.phones for c in contacts)
    assert any(not c.display_name.isascii() for c in contacts)


def test_accounts_created_over_http_can_be_listed(
    client: httpx.Client, sandbox: RunningSandbox
) -> None:
    created = client.post(
        sandbox.base_url + "/_sandbox/accounts", json={"size": 150, "seed": 2, "faults": {}}
    )
    assert created.status_code == 201
    token = created.json()["access_token"]
    contacts, totals = list_all(make_source(client, sandbox, token, page_size=100))
    assert len({c.provider_contact_id for c in contacts}) == 150
    assert totals == [150, 150]


@pytest.mark.parametrize(
    "spec",
    [
        b"{not json",
        b"[1, 2]",
        b'{"seed": 1}',
        b'{"size": -1}',
        b'{"size": true}',
        b'{"size": 10, "faults": {"explode": 1}}',
        b'{"size": 10, "faults": {"latency_ms": "slow"}}',
    ],
)
def test_bad_account_specs_are_400_with_an_error(
    client: httpx.Client, sandbox: RunningSandbox, spec: bytes
) -> None:
    response = client.post(sandbox.base_url + "/_sandbox/accounts", content=spec)
    assert response.status_code == 400
    assert response.json()["error"]


def test_healthz(client: httpx.Client, sandbox: RunningSandbox) -> None:
    response = client.get(sandbox.base_url + "/_sandbox/healthz")
    assert response.status_code == 200
    assert response.json() == {"ok": True}


# --- the sandbox speaks Google's protocol -------------------------------------------------------


def test_person_fields_is_required(client: httpx.Client, sandbox: RunningSandbox) -> None:
    token = sandbox.state.add_account(size=5)
    response = raw_get(client, sandbox, token, pageSize="10")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == 400
    assert error["status"] == "INVALID_ARGUMENT"
    assert "personFields" in error["message"]


@pytest.mark.parametrize("page_size", ["1001", "-1", "many"])
def test_page_size_out_of_range_is_400(
    client: httpx.Client, sandbox: RunningSandbox, page_size: str
) -> None:
    token = sandbox.state.add_account(size=5)
    response = raw_get(client, sandbox, token, personFields=PERSON_FIELDS, pageSize=page_size)
    assert response.status_code == 400
    assert response.json()["error"]["status"] == "INVALID_ARGUMENT"


def test_page_size_defaults_to_100(client: httpx.Client, sandbox: RunningSandbox) -> None:
    token = sandbox.state.add_account(size=250)
    body = raw_get(client, sandbox, token, personFields=PERSON_FIELDS).json()
    assert len(body["connections"]) == 100
    assert body["totalItems"] == 250
    assert body["nextPageToken"]


def test_only_the_person_fields_asked_for_are_returned(
    client: httpx.Client, sandbox: RunningSandbox
) -> None:
    token = sandbox.state.add_account(size=50)
    body = raw_get(client, sandbox, token, personFields="names", pageSize="50").json()
    assert "nextPageToken" not in body
    for person in body["connections"]:
        assert set(person) <= {"resourceName", "etag", "names"}
        assert {"resourceName", "etag"} <= set(person)


@pytest.mark.parametrize(("sort_order", "status"), [("LAST_NAME_ASCENDING", 200), ("BY_MOOD", 400)])
def test_sort_order_is_validated(
    client: httpx.Client, sandbox: RunningSandbox, sort_order: str, status: int
) -> None:
    token = sandbox.state.add_account(size=5)
    response = raw_get(client, sandbox, token, personFields=PERSON_FIELDS, sortOrder=sort_order)
    assert response.status_code == status


def test_a_missing_token_is_401_unauthenticated(
    client: httpx.Client, sandbox: RunningSandbox
) -> None:
    response = client.get(sandbox.base_url + CONNECTIONS, params={"personFields": "names"})
    assert response.status_code == 401
    assert response.json()["error"]["status"] == "UNAUTHENTICATED"


# --- errors the source raises --------------------------------------------------------------------


def test_a_page_token_google_did_not_issue_restarts_the_listing(
    client: httpx.Client, sandbox: RunningSandbox
) -> None:
    # Google answers an unknown page token as it answers an expired one: list again from the top.
    token = sandbox.state.add_account(size=300)
    source = make_source(client, sandbox, token, page_size=100)
    cursor = source.fetch_page(None).next_cursor
    assert cursor is not None
    sealed = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    assert b'"o":100' in sealed
    forged = base64.urlsafe_b64encode(sealed.replace(b'"o":100', b'"o":200')).decode()
    assert source.fetch_page(cursor).contacts  # the real one still works
    for bad in ["garbage", cursor[:-3], cursor + "AAAA", forged]:
        with pytest.raises(CursorExpired) as raised:
            source.fetch_page(bad)
        assert_secret_kept(raised.value, token)


def test_a_page_token_only_works_for_its_account_and_page_size(
    client: httpx.Client, sandbox: RunningSandbox
) -> None:
    first = sandbox.state.add_account(size=300, seed=9)
    second = sandbox.state.add_account(size=300, seed=9)  # same book, another account
    cursor = make_source(client, sandbox, first, page_size=100).fetch_page(None).next_cursor
    with pytest.raises(CursorExpired):
        make_source(client, sandbox, second, page_size=100).fetch_page(cursor)
    with pytest.raises(CursorExpired):
        make_source(client, sandbox, first, page_size=1000).fetch_page(cursor)


def test_a_page_token_survives_a_new_access_token(
    client: httpx.Client, sandbox: RunningSandbox
) -> None:
    token = sandbox.state.add_account(size=300)
    account = sandbox.state.account(token)
    assert account is not None
    refreshed = sandbox.state.add_token(account)
    cursor = make_source(client, sandbox, token, page_size=100).fetch_page(None).next_cursor
    page = make_source(client, sandbox, refreshed, page_size=100).fetch_page(cursor)
    assert len(page.contacts) == 100


# --- pure mapping: Google bodies and answers -> our types ----------------------------------------


def google_response(status: int, body: object = None, **headers: str) -> httpx.Response:
    request = httpx.Request("GET", "https://people.googleapis.com" + CONNECTIONS)
    content = b"" if body is None else json.dumps(body).encode()
    return httpx.Response(status, content=content, headers=headers, request=request)


def google_error(code: int, status: str, message: str = "", reason: str = "") -> dict[str, Any]:
    details = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason}]
    error = {"code": code, "message": message, "status": status}
    return {"error": error | ({"details": details} if reason else {})}


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (google_response(429, google_error(429, "RESOURCE_EXHAUSTED")), RateLimited),
        (google_response(500), ProviderUnavailable),
        (google_response(503, google_error(503, "UNAVAILABLE")), ProviderUnavailable),
        (google_response(401, google_error(401, "UNAUTHENTICATED")), AccessTokenExpired),
        (google_response(403, google_error(403, "PERMISSION_DENIED")), InsufficientScope),
        (
            google_response(
                403, google_error(403, "PERMISSION_DENIED", reason="RATE_LIMIT_EXCEEDED")
            ),
            RateLimited,
        ),
        (
            google_response(
                400, google_error(400, "FAILED_PRECONDITION", "expired", "EXPIRED_SYNC_TOKEN")
            ),
            CursorExpired,
        ),
        (
            google_response(400, google_error(400, "INVALID_ARGUMENT", "EXPIRED_SYNC_TOKEN")),
            CursorExpired,
        ),
        (google_response(410), CursorExpired),
        (google_response(400, google_error(400, "INVALID_ARGUMENT", "bad")), RequestRejected),
        (google_response(404), RequestRejected),
        (google_response(302), MalformedResponse),
    ],
)
def test_error_answers_map_to_the_error_tree(
    response: httpx.Response, expected: type[ProviderError]
) -> None:
    error = error_for_response(response, now=0.0)
    assert type(error) is expected


def test_insufficient_scope_tells_the_user_what_to_do() -> None:
    error = error_for_response(google_response(403), now=0.0)
    assert str(error) == (
        "Google did not grant access to your contacts — "
        "reconnect your account and allow contacts access"
    )


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=42), usegmt=True)
    assert parse_retry_after("5", now=now.timestamp()) == 5.0
    assert parse_retry_after(later, now=now.timestamp()) == 42.0
    assert parse_retry_after(format_datetime(now - timedelta(days=1)), now=now.timestamp()) == 0
    assert parse_retry_after("soon", now=0) is None
    assert parse_retry_after("nan", now=0) is None
    assert parse_retry_after(None, now=0) is None


def test_backoff_grows_and_stays_under_its_cap() -> None:
    def delay(attempt: int, jitter: float) -> float:
        policy = RetryPolicy(max_retry_after=30.0, jitter=lambda: jitter)
        return policy.delay(ProviderUnavailable("HTTP 503"), attempt)

    assert delay(0, 1.0) == 0.5
    assert delay(3, 0.0) == 2.0
    assert delay(100, 1.0) == 30.0


@pytest.mark.parametrize(
    "body", [{"connections": {"resourceName": "people/c1"}}, {"connections": "people/c1"}]
)
def test_bodies_google_would_never_send_are_malformed(body: dict[str, Any]) -> None:
    with pytest.raises(MalformedResponse):
        parse_connections(body)


def test_a_body_without_connections_is_an_empty_last_page() -> None:
    page = parse_connections({"totalPeople": 0})
    assert page.contacts == []
    assert page.next_cursor is None
    assert page.total == 0


def test_the_primary_name_wins_and_deleted_is_read() -> None:
    person = {
        "resourceName": "people/c42",
        "metadata": {"deleted": True},
        "names": [
            {"displayName": "Old Name"},
            {"metadata": {"primary": True}, "givenName": "Ada", "familyName": "Lovelace"},
        ],
        "phoneNumbers": [{"canonicalForm": "+14155550134"}, {"value": "  "}],
        "emailAddresses": [{"value": "ada@example.com"}, {"type": "home"}],
    }
    contact = person_to_contact(person)
    assert contact == IncomingContact(
        provider_contact_id="people/c42",
        display_name="Ada Lovelace",
        emails=("ada@example.com",),
        phones=(PhoneInput("+14155550134", "+14155550134"),),
        deleted=True,
    )
