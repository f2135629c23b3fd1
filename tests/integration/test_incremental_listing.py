"""Full and incremental listings of both sources against the sandbox over loopback.

Each test runs once per provider: Google's sync tokens and Graph's delta links are two
spellings of one behaviour, and the importer relies on that behaviour, not on the spelling.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from contact_import.errors import CursorExpired, MalformedResponse, RequestRejected
from contact_import.providers.base import ContactPage, ContactSource
from contact_import.providers.google import GoogleContactsSource
from contact_import.providers.microsoft import MicrosoftContactsSource
from contact_import.sandbox.accounts import Account, Faults
from contact_import.sandbox.graph import graph_contact_id
from contact_import.sandbox.server import RunningSandbox
from tests.helpers import contacts_of, list_pages


@dataclass(frozen=True)
class Provider:
    name: str
    source_class: Callable[..., GoogleContactsSource | MicrosoftContactsSource]
    contact_id: Callable[[str], str]  # the provider's id of a sandbox Person's resourceName


PROVIDERS = [
    Provider("google", GoogleContactsSource, lambda resource_name: resource_name),
    Provider("microsoft", MicrosoftContactsSource, graph_contact_id),
]


@pytest.fixture(params=PROVIDERS, ids=lambda provider: provider.name)
def provider(request: pytest.FixtureRequest) -> Provider:
    return request.param  # type: ignore[no-any-return]


@dataclass
class World:
    """One provider, one sandbox account and a client: what every test here builds sources of."""

    provider: Provider
    sandbox: RunningSandbox
    client: httpx.Client
    token: str

    @property
    def account(self) -> Account:
        account = self.sandbox.state.account(self.token)
        assert account is not None
        return account

    def source(self, **options: Any) -> ContactSource:
        return self.provider.source_class(
            self.client, api_url=self.sandbox.base_url, access_token=self.token, **options
        )

    def ids(self, resource_names: list[str]) -> set[str]:
        return {self.provider.contact_id(name) for name in resource_names}


@pytest.fixture
def world_of(
    provider: Provider, sandbox: RunningSandbox, client: httpx.Client
) -> Callable[..., World]:
    def make(size: int, seed: int = 1, faults: Faults | None = None) -> World:
        token = sandbox.state.add_account(size=size, seed=seed, faults=faults)
        return World(provider, sandbox, client, token)

    return make


def last_token(pages: list[ContactPage]) -> str:
    token = pages[-1].sync_token
    assert token is not None
    return token


# --- full, then incremental --------------------------------------------------------------------


def test_a_full_listing_hands_out_a_sync_token_on_its_last_page_only(
    world_of: Callable[..., World],
) -> None:
    world = world_of(size=250, seed=21)
    pages = list_pages(world.source(page_size=100))

    assert [len(page.contacts) for page in pages] == [100, 100, 50]
    assert [page.sync_token is None for page in pages] == [True, True, False]
    assert not any(contact.deleted for contact in contacts_of(pages))


def test_an_incremental_listing_returns_exactly_what_changed(
    world_of: Callable[..., World],
) -> None:
    world = world_of(size=2345, seed=22)
    first_token = last_token(list_pages(world.source(page_size=1000)))
    changed = world.sandbox.state.change_book(world.token, modified=5, added=7, deleted=3)

    pages = list_pages(world.source(page_size=1000, sync_token=first_token))

    contacts = contacts_of(pages)
    by_id = {contact.provider_contact_id: contact for contact in contacts}
    assert len(contacts) == len(by_id) == 15
    assert {i for i, c in by_id.items() if c.deleted} == world.ids(changed["deleted"])
    assert set(by_id) - world.ids(changed["deleted"]) == world.ids(
        changed["modified"] + changed["added"]
    )
    for index, resource_name in enumerate(changed["modified"]):
        edited = by_id[world.provider.contact_id(resource_name)]
        assert f"edited.v1.{index}@sandbox.example" in edited.emails
    assert all(by_id[i].emails for i in world.ids(changed["added"]))
    assert all(page.total is None for page in pages)  # what a sync's total counts is unsaid
    assert last_token(pages) != first_token


def test_the_new_token_then_lists_nothing(world_of: Callable[..., World]) -> None:
    world = world_of(size=120, seed=23)
    first_token = last_token(list_pages(world.source()))
    world.sandbox.state.change_book(world.token, modified=2, added=1, deleted=1)
    second_token = last_token(list_pages(world.source(sync_token=first_token)))

    pages = list_pages(world.source(sync_token=second_token))

    assert [page.contacts for page in pages] == [[]]
    assert pages[0].sync_token is not None


def test_changes_accumulate_until_the_next_incremental_listing(
    world_of: Callable[..., World],
) -> None:
    world = world_of(size=300, seed=24)
    first_token = last_token(list_pages(world.source()))
    one = world.sandbox.state.change_book(world.token, modified=3, seed=1)
    two = world.sandbox.state.change_book(world.token, added=2, deleted=1, seed=2)

    contacts = contacts_of(list_pages(world.source(sync_token=first_token)))

    touched = one["modified"] + two["added"] + two["deleted"]
    assert {c.provider_contact_id for c in contacts} == world.ids(touched)
    assert len(contacts) == len(set(touched))


def test_a_full_listing_after_changes_lists_the_book_as_it_is_now(
    world_of: Callable[..., World],
) -> None:
    world = world_of(size=400, seed=25)
    before = {c.provider_contact_id for c in contacts_of(list_pages(world.source()))}
    changed = world.sandbox.state.change_book(world.token, modified=4, added=6, deleted=5)

    contacts = contacts_of(list_pages(world.source(page_size=100)))

    after = {c.provider_contact_id for c in contacts}
    assert len(contacts) == len(after) == 400 + 6 - 5
    assert after == (before - world.ids(changed["deleted"])) | world.ids(changed["added"])
    assert not any(contact.deleted for contact in contacts)


def test_a_listing_keeps_to_the_book_it_started_on(world_of: Callable[..., World]) -> None:
    world = world_of(size=300, seed=26)
    source = world.source(page_size=100)
    first = source.fetch_page(None)
    changed = world.sandbox.state.change_book(world.token, added=50, deleted=50)
    assert first.next_cursor is not None

    pages = [first, *list_pages(source, first.next_cursor)]

    assert len({c.provider_contact_id for c in contacts_of(pages)}) == 300
    since = contacts_of(list_pages(world.source(sync_token=last_token(pages))))
    touched = changed["added"] + changed["deleted"]
    assert {c.provider_contact_id for c in since} == world.ids(touched)


# --- resuming from a cursor, in another process ------------------------------------------------


def test_an_incremental_listing_resumes_from_its_cursor_with_a_new_source(
    world_of: Callable[..., World],
) -> None:
    world = world_of(size=500, seed=27)
    first_token = last_token(list_pages(world.source()))
    world.sandbox.state.change_book(world.token, modified=5, added=7, deleted=3)

    first_page = world.source(page_size=4, sync_token=first_token).fetch_page(None)
    assert first_page.next_cursor is not None
    # What a worker does after a crash: the same constructor arguments, the stored cursor.
    rest = list_pages(world.source(page_size=4, sync_token=first_token), first_page.next_cursor)

    ids = [c.provider_contact_id for c in first_page.contacts + contacts_of(rest)]
    assert len(ids) == len(set(ids)) == 15
    assert [len(page.contacts) for page in [first_page, *rest]] == [4, 4, 4, 3]


def test_a_full_listing_resumes_from_its_cursor_with_a_new_source(
    world_of: Callable[..., World],
) -> None:
    world = world_of(size=250, seed=28)
    cursor = world.source(page_size=100).fetch_page(None).next_cursor
    assert cursor is not None

    rest = list_pages(world.source(page_size=100), cursor)

    assert [len(page.contacts) for page in rest] == [100, 50]
    assert rest[-1].sync_token is not None


# --- what the provider no longer accepts, and what it garbles ----------------------------------


def test_an_expired_sync_token_is_cursor_expired(world_of: Callable[..., World]) -> None:
    world = world_of(size=50, seed=29)
    token = last_token(list_pages(world.source()))
    world.account.faults.expire_sync_tokens = True

    with pytest.raises(CursorExpired) as raised:
        world.source(sync_token=token).fetch_page(None)

    assert world.token not in str(raised.value)
    world.account.faults.expire_sync_tokens = False
    assert list_pages(world.source(sync_token=token))[-1].sync_token is not None


def test_a_sync_token_of_another_account_is_cursor_expired(
    world_of: Callable[..., World],
) -> None:
    mine, theirs = world_of(size=50, seed=30), world_of(size=50, seed=30)
    their_token = last_token(list_pages(theirs.source()))
    with pytest.raises(CursorExpired):
        mine.source(sync_token=their_token).fetch_page(None)


def test_an_expired_page_token_is_cursor_expired_and_a_restart_completes(
    world_of: Callable[..., World], caplog: pytest.LogCaptureFixture
) -> None:
    world = world_of(size=300, seed=31, faults=Faults(expire_page_token_at=3))
    caplog.set_level(logging.DEBUG)
    source = world.source(page_size=100)
    second = source.fetch_page(source.fetch_page(None).next_cursor)
    assert second.next_cursor is not None

    with pytest.raises(CursorExpired) as raised:
        source.fetch_page(second.next_cursor)

    assert world.token not in str(raised.value)
    assert len(contacts_of(list_pages(source))) == 300  # what the importer does next
    assert world.token not in caplog.text


def test_a_truncated_page_is_malformed_and_the_same_cursor_then_works(
    world_of: Callable[..., World], caplog: pytest.LogCaptureFixture
) -> None:
    world = world_of(size=300, seed=32, faults=Faults(malformed_every=2))
    caplog.set_level(logging.DEBUG)
    source = world.source(page_size=100)
    cursor = source.fetch_page(None).next_cursor

    with pytest.raises(MalformedResponse) as raised:
        source.fetch_page(cursor)  # request 2: cut off halfway

    assert world.token not in str(raised.value)
    assert len(source.fetch_page(cursor).contacts) == 100  # request 3: whole again
    assert world.token not in caplog.text


def test_a_truncated_page_of_an_incremental_listing_is_malformed(
    world_of: Callable[..., World],
) -> None:
    world = world_of(size=100, seed=33)
    token = last_token(list_pages(world.source()))
    world.sandbox.state.change_book(world.token, modified=3)
    world.account.faults.malformed_every = world.account.requests + 1  # the very next request

    with pytest.raises(MalformedResponse):
        world.source(sync_token=token).fetch_page(None)


def test_nothing_raised_or_logged_carries_the_access_token(
    world_of: Callable[..., World], caplog: pytest.LogCaptureFixture
) -> None:
    faults = Faults(rate_limit_every=3, retry_after=0, malformed_every=5)
    world = world_of(size=250, seed=34, faults=faults)
    caplog.set_level(logging.DEBUG)
    token = last_token(list_pages(world.source(page_size=100)))
    world.sandbox.state.change_book(world.token, modified=1)
    raised: list[BaseException] = []
    for _ in range(3):
        try:
            list_pages(world.source(sync_token=token, page_size=1))
        except MalformedResponse as exc:
            raised.append(exc)
    world.account.faults.expire_sync_tokens = True
    with pytest.raises(CursorExpired) as expired:
        list_pages(world.source(sync_token=token))
    raised.append(expired.value)

    assert raised
    assert all(world.token not in f"{error} {error!r}" for error in raised)
    assert world.token not in caplog.text


# --- Google and Graph specifics ----------------------------------------------------------------


def test_a_google_incremental_cursor_carries_its_sync_token(
    sandbox: RunningSandbox, client: httpx.Client
) -> None:
    # Google wants the syncToken repeated with each page token: a cursor alone must do.
    world = World(PROVIDERS[0], sandbox, client, sandbox.state.add_account(size=80, seed=35))
    token = last_token(list_pages(world.source()))
    world.sandbox.state.change_book(world.token, added=10)
    cursor = world.source(page_size=4, sync_token=token).fetch_page(None).next_cursor
    assert cursor is not None

    rest = list_pages(world.source(page_size=4), cursor)  # built without the sync token

    assert len(contacts_of(rest)) == 6
    with pytest.raises(CursorExpired):
        world.source(page_size=4).fetch_page('{"syncToken": "", "pageToken": 3}')


def test_a_delta_link_to_another_host_is_refused_before_any_request(
    sandbox: RunningSandbox, client: httpx.Client
) -> None:
    world = World(PROVIDERS[1], sandbox, client, sandbox.state.add_account(size=20, seed=36))
    link = last_token(list_pages(world.source()))
    before = world.account.requests

    for foreign in [link.replace("127.0.0.1", "attacker.example"), "https://graph.invalid/x"]:
        with pytest.raises(RequestRejected) as raised:
            world.source(sync_token=foreign).fetch_page(None)
        assert world.token not in str(raised.value)
    assert world.account.requests == before


def test_a_delta_link_to_another_host_in_a_body_is_not_returned(sandbox: RunningSandbox) -> None:
    token = sandbox.state.add_account(size=5, seed=37)
    with httpx.Client(timeout=30, headers={"Host": "attacker.example"}) as lying:
        source = MicrosoftContactsSource(lying, api_url=sandbox.base_url, access_token=token)
        with pytest.raises(RequestRejected):
            source.fetch_page(None)  # one page: only a delta link, and it points elsewhere
