"""What every route of the sandbox shares: the accounts and their books (``SandboxState``),
what an API request goes through first (``admit``), and JSON as the providers put it on the wire.

Accounts live in a ``SandboxState`` shared by every request; their books are generated on first
use and shared by accounts with the same (size, seed). Books are read-only once built: an
account's edits (``change_book``) are versions laid over its book (``changes.py``). The route
modules (``people``, ``graph``, ``graph_delta``, ``oauth``, ``control``) import this one; it
imports none of them.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, cast

import anyio
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from contact_import.sandbox.accounts import Account, Faults, every_nth
from contact_import.sandbox.book import generate_book
from contact_import.sandbox.dirty import soil, wire_person
from contact_import.sandbox.folder_tree import FolderTree
from contact_import.sandbox.oauth_store import OAuthStore

__all__ = [
    "MAX_BOOK_SIZE",
    "Admitted",
    "ApiErrors",
    "Book",
    "SandboxState",
    "WireJSONResponse",
    "admit",
    "api_route",
    "sandbox_state",
    "wire_json",
]

MAX_BOOK_SIZE = 1_000_000
_SURROGATE = re.compile("[\ud800-\udfff]")


# --- the wire ----------------------------------------------------------------------------------


def wire_json(value: object) -> bytes:
    """JSON as Google and Graph send it: compact, UTF-8 with non-ASCII as is, and a lone
    surrogate (which UTF-8 cannot carry) as its escape, ``"\\ud800"``."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    try:
        return text.encode()
    except UnicodeEncodeError:
        # json.dumps writes characters as they are only inside strings: escaping them there
        # keeps the document valid and means the same text.
        return _SURROGATE.sub(lambda found: f"\\u{ord(found[0]):04x}", text).encode()


class WireJSONResponse(JSONResponse):
    """Starlette's JSONResponse, encoded by ``wire_json`` (it would fail on a lone surrogate)."""

    def render(self, content: Any) -> bytes:
        return wire_json(content)


# --- books and accounts ------------------------------------------------------------------------


class Book:
    """A generated address book: Google Persons, read-only, and their JSON once served.

    Encoding is what a page costs (~10 ms for 1000 Persons); each Person is encoded on its first
    page and reused by every later listing of the same book.
    """

    def __init__(self, people: list[dict[str, Any]]) -> None:
        self.people = people
        self._json: list[bytes | None] = [None] * len(people)

    def __len__(self) -> int:
        return len(self.people)

    def people_json(self, start: int, end: int) -> list[bytes]:
        """The Persons in ``[start, end)``, each encoded as JSON."""
        encoded = self._json
        for index in range(start, min(end, len(encoded))):
            if encoded[index] is None:  # two threads may both encode it: same bytes, no harm
                encoded[index] = wire_json(wire_person(self.people[index]))
        return cast(list[bytes], encoded[start:end])


class SandboxState:
    """Thread-safe registry of accounts (by access token) and of the books they list."""

    def __init__(
        self, default_size: int = 500, default_seed: int = 1, oauth: OAuthStore | None = None
    ) -> None:
        """``default_*``: the book of an account the OAuth servers create without a login hint."""
        self._lock = threading.Lock()
        self._book_lock = threading.Lock()  # apart: building a book must not block lookups
        self._tokens: dict[str, Account] = {}
        self._expires: dict[str, float] = {}  # access token -> deadline on self.oauth.clock
        self._accounts: dict[str, Account] = {}
        self._books: dict[tuple[int, int, int], Book] = {}
        self._next_id = 1
        self.default_size = default_size
        self.default_seed = default_seed
        self.oauth = oauth or OAuthStore()

    def add_account(
        self,
        size: int,
        seed: int = 1,
        token: str | None = None,
        faults: Faults | None = None,
        folders: FolderTree | None = None,
    ) -> str:
        """Register an account whose book is ``generate_book(size, seed)``; return its token.

        ``folders``: the Outlook folders the book is spread over (None: all in the default one).
        """
        return self.add_token(self.new_account(size, seed, faults, folders), token)

    def new_account(
        self,
        size: int,
        seed: int = 1,
        faults: Faults | None = None,
        folders: FolderTree | None = None,
    ) -> Account:
        """Register an account whose book is ``generate_book(size, seed)``, without a token."""
        if not 0 <= size <= MAX_BOOK_SIZE:
            raise ValueError(f"size must be between 0 and {MAX_BOOK_SIZE}")
        with self._lock:
            account = Account(f"acct-{self._next_id}", size, seed, faults or Faults())
            account.folders = folders or FolderTree()
            self._accounts[account.id] = account
            self._next_id += 1
        return account

    def account_by_id(self, account_id: str) -> Account | None:
        """The account with id ``account_id``, or None."""
        with self._lock:
            return self._accounts.get(account_id)

    def add_token(
        self, account: Account, token: str | None = None, ttl: float | None = None
    ) -> str:
        """Give ``account`` another valid access token, expiring after ``ttl`` seconds if given."""
        token = token or secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[token] = account
            if ttl is not None:
                self._expires[token] = self.oauth.clock() + ttl
        return token

    def account(self, token: str) -> Account | None:
        """The account ``token`` belongs to; None when unknown, expired or revoked."""
        with self._lock:
            account = self._tokens.get(token)
            if token in self._expires and self._expires[token] <= self.oauth.clock():
                del self._tokens[token], self._expires[token]
                return None
        return None if account is None or account.faults.revoked else account

    def revoke(self, account_or_token: Account | str) -> None:
        """The user revokes consent: the account's access and refresh tokens stop working."""
        if isinstance(account_or_token, Account):
            account_or_token.faults.revoked = True
            return
        with self._lock:
            account = self._tokens.get(account_or_token)
        account = account or self.oauth.refresh_token_account(account_or_token)
        if account is None:
            raise KeyError("no account has this token")
        account.faults.revoked = True

    def count_request(self, account: Account, kind: str = "contacts") -> int:
        """Count one more API request of ``account``; return its number among the requests of
        its ``kind`` (``contacts`` or ``folders``; 1 for the first)."""
        with self._lock:
            if kind == "folders":
                account.folder_requests += 1
                return account.folder_requests
            account.requests += 1
            return account.requests

    def cached_book(self, account: Account) -> Book | None:
        """The account's book if it was already built, else None (without building it)."""
        return self._books.get(_book_key(account))

    def book(self, account: Account) -> Book:
        """The account's book, built on first use (slow for large books: call off the loop)."""
        key = _book_key(account)
        with self._book_lock:
            if key not in self._books:
                people = generate_book(account.size, account.seed)
                self._books[key] = Book(soil(people, account.faults.dirty_every))
            return self._books[key]

    def change_book(
        self,
        token_or_account: str | Account,
        *,
        modified: int = 0,
        added: int = 0,
        deleted: int = 0,
        seed: int = 0,
        folder: str | None = None,
    ) -> dict[str, Any]:
        """Edit the account's book as a new version (see ``changes``); what changed, by kind.

        Modified people get another email and a new name, added ones an email no one has (filed
        in the Outlook folder at path ``folder`` when given), deleted ones are listed as deleted
        by the next sync. KeyError: no such account or folder.
        """
        if isinstance(token_or_account, str):
            account = self.account(token_or_account) or self.account_by_id(token_or_account)
        else:
            account = token_or_account
        if account is None:
            raise KeyError("no account has this token or id")
        folder_id = None if folder is None else account.folders.by_path(folder)
        if folder is not None and folder_id is None:
            raise KeyError("no such folder")
        base = self.book(account).people
        change = account.changes.apply(
            base, modified=modified, added=added, deleted=deleted, seed=seed
        )
        if folder_id is not None:
            account.folders.pin(list(change.added), folder_id)
        return change.summary()


def _book_key(account: Account) -> tuple[int, int, int]:
    return account.size, account.seed, account.faults.dirty_every


def sandbox_state(request: Request) -> SandboxState:
    """The state of the sandbox app serving ``request``."""
    return cast(SandboxState, request.app.state.sandbox)


# --- what every provider API does first --------------------------------------------------------


class ApiErrors(Protocol):
    """The error answers of one provider API, in its own wire format."""

    def unauthenticated(self) -> Response: ...

    def unavailable(self) -> Response: ...

    def rate_limited(self, retry_after: int) -> Response: ...


@dataclass(frozen=True, slots=True)
class Admitted:
    """A request that passed ``admit``: its account and its number among the account's requests."""

    state: SandboxState
    account: Account
    number: int

    async def book(self) -> Book:
        """The account's book; built once per (size, seed), off the event loop (100k: seconds)."""
        book = self.state.cached_book(self.account)
        if book is None:
            book = await run_in_threadpool(self.state.book, self.account)
        return book

    def fires(self, every: int) -> bool:
        """Whether a fault knob "every Nth request" of this account fires on this request."""
        return every_nth(every, self.number)


async def admit(request: Request, errors: ApiErrors, kind: str = "contacts") -> Admitted | Response:
    """Authenticate, count, delay and maybe fault an API request; a Response is the answer.

    ``kind``: which of the account's request counters numbers it (see ``Account``).
    """
    state = sandbox_state(request)
    account = state.account(_bearer_token(request))
    if account is None:
        return errors.unauthenticated()
    admitted = Admitted(state, account, state.count_request(account, kind))
    faults = account.faults
    if faults.latency_ms:
        await anyio.sleep(faults.latency_ms / 1000)
    if admitted.fires(faults.server_error_every):
        return errors.unavailable()
    if admitted.fires(faults.rate_limit_every):
        return errors.rate_limited(faults.retry_after)
    return admitted


def api_route(
    path: str,
    errors: ApiErrors,
    answer: Callable[[Request, Admitted], Awaitable[Response]],
    kind: str = "contacts",
) -> Route:
    """A GET route of a provider API: ``answer`` answers the requests ``admit`` lets through."""

    async def endpoint(request: Request) -> Response:
        admitted = await admit(request, errors, kind)
        if isinstance(admitted, Response):
            return admitted
        return await answer(request, admitted)

    return Route(path, endpoint, methods=["GET"])


def _bearer_token(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""
