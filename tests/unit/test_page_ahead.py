"""A page fetched ahead is parsed only once the importer lets it (``runner.listing.PageAhead``).

The helper thread sends its request at once; parsing the answer waits for ``release``, which
the page write calls when it is about to wait on the database. Only a contacts page waits
(``providers.http.wait_while_parsing_held``, called by ``ApiContactSource._get_json``): a token
refresh or an error body on the way is handled at once. No network here: the answer is a real
``httpx.Response`` built in the test.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from contact_import.providers.base import ContactPage
from contact_import.providers.http import (
    json_object,
    parsing_held_until,
    wait_while_parsing_held,
)
from contact_import.runner.listing import FetchedPage, PageAhead

JOB = "0123456789abcdef0123456789abcdef"
_NOT_BEFORE = 0.3  # seconds the test gives a parse that must not happen yet


def _answer() -> httpx.Response:
    request = httpx.Request("GET", "https://people.example.test/v1/people/me/connections")
    return httpx.Response(200, content=b'{"connections": [], "totalItems": 0}', request=request)


def _contacts_page(response: httpx.Response) -> dict[str, Any]:
    """What ``ApiContactSource._get_json`` does with a contacts page answered."""
    wait_while_parsing_held()
    return json_object(response, "People API")


class _Fetch:
    """A fetch as a provider source does it: the answer arrives, then it is parsed."""

    def __init__(self) -> None:
        self.answered = threading.Event()
        self.parsed = threading.Event()
        self.thread = ""

    def __call__(self) -> FetchedPage:
        self.thread = threading.current_thread().name
        response = _answer()
        self.answered.set()
        body = _contacts_page(response)
        self.parsed.set()
        return FetchedPage(ContactPage(total=body["totalItems"]), [])


def test_the_answer_of_a_page_fetched_ahead_waits_for_release_before_it_is_parsed() -> None:
    fetch = _Fetch()
    ahead = PageAhead(fetch, JOB)
    assert fetch.answered.wait(5)
    assert not fetch.parsed.wait(_NOT_BEFORE)  # held: the importer's round trips go first
    ahead.release()
    assert fetch.parsed.wait(5)
    assert ahead.result().page.total == 0
    assert fetch.thread.startswith("fetch-ahead-01234567")


def test_asking_for_the_page_ahead_releases_it() -> None:
    """The importer needs the page now: ``result`` never waits on a gate nobody opens."""
    fetch = _Fetch()
    ahead = PageAhead(fetch, JOB)
    assert fetch.answered.wait(5)
    assert ahead.result().page.total == 0
    assert fetch.parsed.is_set()


def test_what_the_fetch_raised_is_raised_by_result_after_release() -> None:
    def refused() -> FetchedPage:
        request = httpx.Request("GET", "https://people.example.test/")
        _contacts_page(httpx.Response(200, content=b"not json", request=request))
        raise AssertionError("unreachable: the body is not JSON")

    ahead = PageAhead(refused, JOB)
    with pytest.raises(Exception, match="People API sent a body that is not JSON"):
        ahead.result()


def _in_a_thread(parse: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``parse`` on another thread, given 5 s: a parse held by mistake fails the test, not
    the suite's timeout."""
    done: list[dict[str, Any]] = []
    thread = threading.Thread(target=lambda: done.append(parse()), daemon=True)
    thread.start()
    thread.join(5)
    assert done, "the parse was held"
    return done[0]


def test_parsing_is_held_only_for_contacts_pages_in_that_thread_inside_the_block() -> None:
    gate = threading.Event()  # never opened
    held: list[dict[str, Any]] = []

    def under_the_gate(parse: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
        def run() -> dict[str, Any]:
            with parsing_held_until(gate):
                return parse()

        return run

    # Not a contacts page (a token answer, a profile): parsed at once even under the gate.
    assert _in_a_thread(under_the_gate(lambda: json_object(_answer(), "x")))["totalItems"] == 0
    # A contacts page under the gate: held.
    thread = threading.Thread(
        target=lambda: held.append(under_the_gate(lambda: _contacts_page(_answer()))()),
        daemon=True,
    )
    thread.start()
    thread.join(_NOT_BEFORE)
    assert held == []
    # Another thread, or after the block: not held.
    assert _in_a_thread(lambda: _contacts_page(_answer()))["totalItems"] == 0

    def after_the_block() -> dict[str, Any]:
        with parsing_held_until(gate):
            pass
        return _contacts_page(_answer())

    assert _in_a_thread(after_the_block)["totalItems"] == 0
    gate.set()
    thread.join(5)
    assert held == [{"connections": [], "totalItems": 0}]
