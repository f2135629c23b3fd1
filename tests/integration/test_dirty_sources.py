"""Dirty contacts on the wire (the sandbox's ``dirty_every`` knob) and how both provider
sources read them: over loopback, no mocked client."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest

from contact_import.domain.contact import STAND_IN_PREFIX, IncomingContact
from contact_import.errors import MalformedResponse
from contact_import.providers.base import ContactSource
from contact_import.providers.google import GoogleContactsSource
from contact_import.providers.http import json_object
from contact_import.providers.microsoft import DELTA_PATH, MicrosoftContactsSource
from contact_import.sandbox.accounts import Faults
from contact_import.sandbox.book import generate_book
from contact_import.sandbox.graph import graph_contact_id
from contact_import.sandbox.server import RunningSandbox
from tests.helpers import raw_get

SIZE, SEED, EVERY = 140, 17, 4
# The knob's definition (see sandbox/dirty.py), written out here on purpose: Persons number
# EVERY, 2*EVERY, ... (from 1) are dirty, these kinds in turn.
KINDS = [
    "nul_email", "nul_name", "surrogate_name", "no_id", "plus_phone", "control_chars",
    "surrogate_email",
]  # fmt: skip
SourceMaker = Callable[[httpx.Client, str, str], ContactSource]


def kind_at(index: int) -> str | None:
    if (index + 1) % EVERY:
        return None
    return KINDS[((index + 1) // EVERY - 1) % len(KINDS)]


def google_source(client: httpx.Client, url: str, token: str) -> ContactSource:
    return GoogleContactsSource(client, api_url=url, access_token=token, page_size=25)


def microsoft_source(client: httpx.Client, url: str, token: str) -> ContactSource:
    return MicrosoftContactsSource(client, api_url=url, access_token=token, page_size=25)


def google_id(person: dict[str, Any]) -> str:
    return str(person["resourceName"])


def microsoft_id(person: dict[str, Any]) -> str:
    return graph_contact_id(person["resourceName"])


PROVIDERS: dict[str, tuple[SourceMaker, Callable[[dict[str, Any]], str]]] = {
    "google": (google_source, google_id),
    "microsoft": (microsoft_source, microsoft_id),
}


def list_all(source: ContactSource) -> list[IncomingContact]:
    contacts: list[IncomingContact] = []
    cursor: str | None = None
    while True:
        page = source.fetch_page(cursor)
        contacts += page.contacts
        cursor = page.next_cursor
        if cursor is None:
            return contacts


@pytest.fixture
def dirty_token(sandbox: RunningSandbox) -> str:
    return sandbox.state.add_account(size=SIZE, seed=SEED, faults=Faults(dirty_every=EVERY))


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_every_dirty_contact_arrives_and_only_the_id_less_get_stand_in_ids(
    client: httpx.Client, sandbox: RunningSandbox, dirty_token: str, provider: str
) -> None:
    make, provider_id = PROVIDERS[provider]
    contacts = list_all(make(client, sandbox.base_url, dirty_token))
    again = list_all(make(client, sandbox.base_url, dirty_token))
    clean = generate_book(SIZE, SEED)

    assert len(contacts) == SIZE  # nothing rejected a page
    assert len({c.provider_contact_id for c in contacts}) == SIZE
    assert [c.provider_contact_id for c in again] == [c.provider_contact_id for c in contacts]
    for index, (contact, person) in enumerate(zip(contacts, clean, strict=True)):
        kind = kind_at(index)
        if kind == "no_id":
            assert contact.provider_contact_id.startswith(STAND_IN_PREFIX)
            assert contact.problem is not None
            assert "without" in contact.problem
        else:
            assert contact.provider_contact_id == provider_id(person)
            assert contact.problem is None
        if kind == "surrogate_name":
            assert contact.display_name.endswith(" \ud800")  # decoded as the lone surrogate
        if kind in {"nul_email", "surrogate_email"}:
            assert "\x00" in contact.emails[0] or "\udc00" in contact.emails[0]
        if kind == "plus_phone":
            assert contact.emails == ()
            assert [phone.value for phone in contact.phones] == ["+"]
    assert {kind_at(i) for i in range(SIZE)} >= set(KINDS)  # the book has every kind


def test_google_sends_a_lone_surrogate_as_its_json_escape_and_drops_the_resource_name(
    client: httpx.Client, sandbox: RunningSandbox, dirty_token: str
) -> None:
    url = sandbox.base_url + "/v1/people/me/connections"
    response = raw_get(client, url, dirty_token, personFields="names,emailAddresses", pageSize="50")
    body = response.content

    assert response.status_code == 200
    body.decode("utf-8")  # valid UTF-8, as Google's
    assert b'\\ud800"' in body  # the escape itself, on the wire
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(body)
    people = json.loads(body)["connections"]
    assert [i for i, p in enumerate(people) if "resourceName" not in p] == [
        i for i in range(50) if kind_at(i) == "no_id"
    ]
    assert json_object(response, "Google")["connections"] == people  # the fallback decoder


def test_graph_sends_a_lone_surrogate_as_its_json_escape_and_drops_the_id(
    client: httpx.Client, sandbox: RunningSandbox, dirty_token: str
) -> None:
    response = client.get(
        sandbox.base_url + DELTA_PATH,
        headers={"Authorization": f"Bearer {dirty_token}", "Prefer": "odata.maxpagesize=50"},
    )
    body = response.content

    assert response.status_code == 200
    body.decode("utf-8")
    assert b'\\ud800"' in body
    assert b"\\udc00" in body
    contacts = json.loads(body)["value"]
    assert [i for i, c in enumerate(contacts) if "id" not in c] == [
        i for i in range(50) if kind_at(i) == "no_id"
    ]
    assert all("@odata.etag" in contact for contact in contacts)


@pytest.mark.parametrize(
    "content",
    [b'{"connections": [', b"\xff\xfe{}", b"[" * 100_000 + b"]" * 100_000, b"NaN-ish"],
    ids=["truncated", "not-utf8", "too-deep", "not-json"],
)
def test_bodies_neither_decoder_reads_are_malformed(content: bytes) -> None:
    response = httpx.Response(200, content=content)
    with pytest.raises(MalformedResponse):
        json_object(response, "Google People API")


def test_a_surrogate_pair_in_escapes_is_one_character_for_both_decoders() -> None:
    body: dict[str, Any] = json_object(httpx.Response(200, content=b'{"n": "\\ud83d\\ude00"}'), "x")
    assert body == {"n": "😀"}
