"""What every provider's contact source does alike, against the sandbox over loopback (real
HTTP, no mocked client): listing, the errors it raises, retries. Each test runs for Google and
Microsoft; what only one of them does is in test_google_source.py / test_microsoft_source.py."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from contact_import.errors import AccessTokenExpired, ProviderUnavailable, RateLimited
from contact_import.providers.api_source import ApiContactSource
from contact_import.providers.base import ContactPage
from contact_import.providers.google import GoogleContactsSource
from contact_import.providers.microsoft import MicrosoftContactsSource
from contact_import.sandbox.accounts import Faults
from contact_import.sandbox.graph import graph_contact_id
from contact_import.sandbox.server import RunningSandbox
from tests.helpers import RecordedSleeps, assert_secret_kept, list_pages


@dataclass(frozen=True)
class Provider:
    """One provider's source and the few things its wire format says differently."""

    name: str
    source_class: type[ApiContactSource]
    contact_id: Callable[[dict[str, Any]], str]  # the id a sandbox Person is listed under
    reports_total: bool  # People API says totalItems; Graph's delta has no $count
    foreign_token: str  # looks like one of its tokens, but the sandbox never issued it

    def source(
        self, client: httpx.Client, sandbox: RunningSandbox, token: str, **options: Any
    ) -> ApiContactSource:
        return self.source_class(client, api_url=sandbox.base_url, access_token=token, **options)

    def total(self, size: int) -> int | None:
        return size if self.reports_total else None


PROVIDERS = [
    Provider(
        "google",
        GoogleContactsSource,
        lambda person: str(person["resourceName"]),
        reports_total=True,
        foreign_token="ya29.not-a-token-the-sandbox-issued",
    ),
    Provider(
        "microsoft",
        MicrosoftContactsSource,
        lambda person: graph_contact_id(person["resourceName"]),
        reports_total=False,
        foreign_token="EwBwA8l6BAAU.not-a-token-the-sandbox-issued",
    ),
]


@pytest.fixture(params=PROVIDERS, ids=lambda p: p.name)
def provider(request: pytest.FixtureRequest) -> Provider:
    chosen: Provider = request.param
    return chosen


def listed_ids(pages: list[ContactPage]) -> list[str]:
    return [contact.provider_contact_id for page in pages for contact in page.contacts]


def book_of(sandbox: RunningSandbox, token: str) -> list[dict[str, Any]]:
    account = sandbox.state.account(token)
    assert account is not None
    return sandbox.state.book(account).people


def requests_of(sandbox: RunningSandbox, token: str) -> int:
    account = sandbox.state.account(token)
    assert account is not None
    return account.requests


# --- listing -------------------------------------------------------------------------------------


@pytest.mark.parametrize("page_size", [1000, 100])
def test_full_listing_returns_every_contact_exactly_once(
    client: httpx.Client, sandbox: RunningSandbox, provider: Provider, page_size: int
) -> None:
    token = sandbox.state.add_account(size=2345, seed=3)
    pages = list_pages(provider.source(client, sandbox, token, page_size=page_size))

    ids = listed_ids(pages)
    assert len(ids) == len(set(ids)) == 2345
    assert ids == [provider.contact_id(person) for person in book_of(sandbox, token)]
    assert [page.total for page in pages] == [provider.total(2345)] * len(pages)
    assert len(pages) == -(-2345 // page_size)
    # Only the last page carries the token that lists just the changes next time.
    assert [page.sync_token is not None for page in pages] == [False] * (len(pages) - 1) + [True]


def test_an_empty_address_book_is_one_empty_last_page(
    client: httpx.Client, sandbox: RunningSandbox, provider: Provider
) -> None:
    token = sandbox.state.add_account(size=0)
    page = provider.source(client, sandbox, token).fetch_page(None)
    assert page.contacts == []
    assert page.next_cursor is None
    assert page.total == provider.total(0)
    assert page.sync_token is not None


# --- errors the source raises --------------------------------------------------------------------


def test_a_wrong_token_is_access_token_expired(
    client: httpx.Client, sandbox: RunningSandbox, provider: Provider
) -> None:
    token = provider.foreign_token
    with pytest.raises(AccessTokenExpired) as raised:
        provider.source(client, sandbox, token).fetch_page(None)
    assert_secret_kept(raised.value, token)


@pytest.mark.parametrize("retry_after", [0, 1])
def test_rate_limits_are_retried_honouring_retry_after(
    *,
    client: httpx.Client,
    sandbox: RunningSandbox,
    provider: Provider,
    sleeps: RecordedSleeps,
    caplog: pytest.LogCaptureFixture,
    retry_after: int,
) -> None:
    faults = Faults(rate_limit_every=2, retry_after=retry_after)
    token = sandbox.state.add_account(size=2345, seed=4, faults=faults)
    caplog.set_level(logging.INFO)

    source = provider.source(client, sandbox, token, page_size=100, sleep=sleeps)
    ids = listed_ids(list_pages(source))

    assert len(set(ids)) == 2345
    assert sleeps == [float(retry_after)] * 23  # the first try of every page but the first
    assert token not in caplog.text


def test_retry_after_is_capped(
    client: httpx.Client, sandbox: RunningSandbox, provider: Provider, sleeps: RecordedSleeps
) -> None:
    token = sandbox.state.add_account(size=10, faults=Faults(rate_limit_every=2, retry_after=3600))
    source = provider.source(client, sandbox, token, max_retry_after=5.0, sleep=sleeps)
    source.fetch_page(None)
    source.fetch_page(None)
    # Every wait is capped (Microsoft may also meet the 429 on its folder listing).
    assert sleeps
    assert set(sleeps) == {5.0}


def test_a_rate_limit_that_does_not_lift_is_raised_with_retry_after(
    client: httpx.Client, sandbox: RunningSandbox, provider: Provider, sleeps: RecordedSleeps
) -> None:
    token = sandbox.state.add_account(size=10, faults=Faults(rate_limit_every=1, retry_after=7))
    with pytest.raises(RateLimited) as raised:
        provider.source(client, sandbox, token, max_retries=2, sleep=sleeps).fetch_page(None)
    assert raised.value.retry_after == 7
    assert sleeps == [7.0, 7.0]
    assert_secret_kept(raised.value, token)


def test_server_errors_end_in_provider_unavailable_after_retries(
    client: httpx.Client, sandbox: RunningSandbox, provider: Provider, sleeps: RecordedSleeps
) -> None:
    token = sandbox.state.add_account(size=10, faults=Faults(server_error_every=1))
    with pytest.raises(ProviderUnavailable) as raised:
        provider.source(client, sandbox, token, max_retries=3, sleep=sleeps).fetch_page(None)
    assert requests_of(sandbox, token) == 4
    assert len(sleeps) == 3
    assert sleeps[0] < sleeps[2]  # the backoff grows
    assert "503" in str(raised.value)
    assert_secret_kept(raised.value, token)


def test_an_occasional_server_error_is_absorbed(
    client: httpx.Client, sandbox: RunningSandbox, provider: Provider, sleeps: RecordedSleeps
) -> None:
    token = sandbox.state.add_account(size=500, faults=Faults(server_error_every=3))
    source = provider.source(client, sandbox, token, page_size=100, sleep=sleeps)
    assert len(set(listed_ids(list_pages(source)))) == 500
    assert len(sleeps) == 2


def test_a_refused_connection_is_provider_unavailable(
    client: httpx.Client, provider: Provider, sleeps: RecordedSleeps
) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    token = provider.foreign_token
    source = provider.source_class(
        client, api_url=f"http://127.0.0.1:{port}", access_token=token, sleep=sleeps
    )
    with pytest.raises(ProviderUnavailable) as raised:
        source.fetch_page(None)
    assert len(sleeps) == 3
    assert_secret_kept(raised.value, token)


def test_a_slow_answer_is_provider_unavailable(
    sandbox: RunningSandbox, provider: Provider, sleeps: RecordedSleeps
) -> None:
    token = sandbox.state.add_account(size=10, faults=Faults(latency_ms=500))
    with httpx.Client(timeout=0.1) as impatient:
        source = provider.source(impatient, sandbox, token, max_retries=1, sleep=sleeps)
        with pytest.raises(ProviderUnavailable, match="in time"):
            source.fetch_page(None)
    assert len(sleeps) == 1


def test_page_size_is_checked_before_any_request(client: httpx.Client, provider: Provider) -> None:
    with pytest.raises(ValueError):
        provider.source_class(client, api_url="http://x", access_token="t", page_size=1001)
