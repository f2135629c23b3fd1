"""Google sync pages and Graph delta pages, and their errors, mapped to our types (pure)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from contact_import.domain.contact import (
    STAND_IN_PREFIX,
    IncomingContact,
    RejectedContact,
    normalize_contact,
)
from contact_import.errors import CursorExpired, MalformedResponse, ProviderError, RequestRejected
from contact_import.providers import google, microsoft

DELTA = "https://graph.microsoft.com/v1.0/me/contactFolders/contacts/contacts/delta"


def response(status: int, body: object, url: str = "https://example.test/") -> httpx.Response:
    request = httpx.Request("GET", url)
    return httpx.Response(status, content=json.dumps(body).encode(), request=request)


# --- Google --------------------------------------------------------------------------------------


def test_google_takes_the_sync_token_of_the_last_page_only() -> None:
    last = google.parse_connections({"connections": [], "nextSyncToken": "S1"})
    middle = google.parse_connections({"nextPageToken": "P2", "nextSyncToken": "S1"})
    assert (last.next_cursor, last.sync_token) == (None, "S1")
    assert (middle.next_cursor, middle.sync_token) == ("P2", None)
    assert google.parse_connections({}).sync_token is None


def test_google_deleted_people_are_deleted_contacts() -> None:
    body = {
        "connections": [
            {"resourceName": "people/c1", "etag": "%E", "metadata": {"deleted": True}},
            {"resourceName": "people/c2", "names": [{"displayName": "Ada"}]},
        ]
    }
    assert google.parse_connections(body).contacts == [
        IncomingContact(provider_contact_id="people/c1", deleted=True, version="%E"),
        IncomingContact(provider_contact_id="people/c2", display_name="Ada"),
    ]


@pytest.mark.parametrize("body", [{"nextSyncToken": 7}, {"nextPageToken": ["p"]}])
def test_google_bodies_it_would_never_send_are_malformed(body: dict[str, Any]) -> None:
    with pytest.raises(MalformedResponse):
        google.parse_connections(body)


def test_google_people_without_a_resource_name_fail_alone_under_stable_ids() -> None:
    nameless = {"etag": "%E1", "names": [{"displayName": "Ada"}]}
    body = {
        "connections": [
            {"resourceName": "people/c1", "names": [{"displayName": "Bob"}]},
            nameless,
            {"metadata": {"deleted": True}},
            dict(nameless),  # the very same JSON again: still a contact of its own
            "not a Person",
        ]
    }
    contacts = google.parse_connections(body).contacts
    again = google.parse_connections(json.loads(json.dumps(body))).contacts

    assert contacts == again  # a page read again after a crash: the same ids
    ids = [contact.provider_contact_id for contact in contacts]
    assert ids[0] == "people/c1"
    assert contacts[0].problem is None
    assert len(set(ids)) == 5
    assert all(pcid.startswith(STAND_IN_PREFIX) for pcid in ids[1:])
    assert [c.problem for c in contacts[1:4]] == [
        "Google sent this Person without a resourceName"
    ] * 3
    assert contacts[4].problem == "Google sent an entry that is not a Person"
    assert all(normalize_contact(c, "US") == RejectedContact(c.provider_contact_id, c.problem or "")
               for c in contacts[1:])  # fmt: skip


def google_error(status: str, message: str, reason: str = "") -> dict[str, Any]:
    error: dict[str, Any] = {"code": 400, "status": status, "message": message}
    if reason:
        error["details"] = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason}]
    return {"error": error}


EXPIRED = "Sync token is expired. Clear local cache and retry call without the sync token."


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (google_error("FAILED_PRECONDITION", EXPIRED, "EXPIRED_SYNC_TOKEN"), CursorExpired),
        (google_error("INVALID_ARGUMENT", EXPIRED, "EXPIRED_SYNC_TOKEN"), CursorExpired),
        (google_error("FAILED_PRECONDITION", EXPIRED), CursorExpired),  # no details at all
        (google_error("INVALID_ARGUMENT", "the page token is not valid."), CursorExpired),
        (google_error("INVALID_ARGUMENT", "Invalid pageToken."), CursorExpired),
        (google_error("INVALID_ARGUMENT", 'Invalid personFields mask path: "x".'), RequestRejected),
    ],
)
def test_google_400s_about_tokens_restart_the_listing(
    body: dict[str, Any], expected: type[ProviderError]
) -> None:
    assert type(google.error_for_response(response(400, body), now=0.0)) is expected


# --- Graph ---------------------------------------------------------------------------------------


def test_graph_takes_the_delta_link_as_the_sync_token() -> None:
    page = microsoft.parse_contacts({"value": [], "@odata.deltaLink": DELTA + "?$deltatoken=d"})
    assert (page.next_cursor, page.sync_token, page.total) == (None, DELTA + "?$deltatoken=d", None)


def test_both_providers_read_the_contact_version() -> None:
    """Google's Person ``etag`` and Graph's ``changeKey``: what a re-import compares."""
    people = google.parse_connections(
        {"connections": [{"resourceName": "people/c1", "etag": "%EgU"}, {"resourceName": "p/2"}]}
    )
    assert [c.version for c in people.contacts] == ["%EgU", None]
    graph = microsoft.parse_contacts(
        {
            "value": [
                {"id": "AAMk1", "@odata.etag": 'W/"EQAB"', "changeKey": "EQAB"},
                {"id": "AAMk2"},
            ]
        }
    )
    assert [c.version for c in graph.contacts] == ["EQAB", None]


def test_graph_removed_entries_are_deleted_contacts() -> None:
    body = {
        "value": [
            {
                "@odata.type": "#microsoft.graph.contact",
                "id": "AAMk1",
                "@removed": {"reason": "deleted"},
            },
            {"@odata.type": "#microsoft.graph.contact", "id": "AAMk2", "displayName": "Ada"},
        ],
        "@odata.nextLink": DELTA + "?$skiptoken=s",
    }
    assert microsoft.parse_contacts(body).contacts == [
        IncomingContact(provider_contact_id="AAMk1", deleted=True),
        IncomingContact(provider_contact_id="AAMk2", display_name="Ada"),
    ]


@pytest.mark.parametrize(
    "body",
    [
        {"value": [], "@odata.nextLink": DELTA + "?s", "@odata.deltaLink": DELTA + "?d"},
        {"value": [], "@odata.deltaLink": ""},
        {"value": [], "@odata.deltaLink": {"href": DELTA}},
    ],
)
def test_graph_bodies_it_would_never_send_are_malformed(body: dict[str, Any]) -> None:
    with pytest.raises(MalformedResponse):
        microsoft.parse_contacts(body)


def test_graph_contacts_without_an_id_fail_alone_under_stable_ids() -> None:
    body = {
        "value": [
            {"@odata.etag": 'W/"1"', "displayName": "Ada"},
            {"@odata.etag": 'W/"1"', "displayName": "Ada"},
            {"@removed": {"reason": "deleted"}},
            {"id": "AAMk2", "displayName": "Bob"},
            7,
        ]
    }
    contacts = microsoft.parse_contacts(body).contacts
    again = microsoft.parse_contacts(json.loads(json.dumps(body))).contacts

    assert contacts == again
    assert len({contact.provider_contact_id for contact in contacts}) == 5
    assert contacts[3] == IncomingContact(provider_contact_id="AAMk2", display_name="Bob")
    problems = [contact.problem for contact in contacts]
    no_id = "Microsoft sent this contact without an id"
    assert problems == [no_id, no_id, no_id, None, "Microsoft sent an entry that is not a contact"]


@pytest.mark.parametrize(
    ("status", "code"),
    [(410, "SyncStateNotFound"), (410, ""), (400, "syncStateNotFound"),
     (400, "resyncRequired"), (400, "syncStateInvalid")],
)  # fmt: skip
def test_graph_answers_about_a_gone_sync_state_restart_the_listing(status: int, code: str) -> None:
    body = {"error": {"code": code, "message": "m"}} if code else {}
    assert type(microsoft.error_for_response(response(status, body), now=0.0)) is CursorExpired
