"""The sandbox provider as an ASGI app: Google's People API and Microsoft Graph's contacts over
real HTTP, with fault knobs.

Routes:

    GET  /v1/people/me/connections   people.connections.list, with sync tokens (``people.py``)
    GET  /v1.0/me/contacts           the same books as Graph answers them (see ``graph.py``)
    GET  /v1.0/me/contactFolders/contacts/contacts/delta   Graph's delta (``graph_delta.py``)
    POST /_sandbox/accounts          {"size", "seed", "faults", "token"?} -> 201 {"access_token"}
    POST /_sandbox/accounts/{id}/changes   {"modified", "added", "deleted", "seed"} -> 200
    GET  /_sandbox/healthz           {"ok": true}
    GET|POST Google's and Microsoft's OAuth authorize and token endpoints (see ``oauth.py``)

Accounts live in a ``SandboxState`` shared by every request; their books are generated on first
use and shared by accounts with the same (size, seed). Books are read-only once built: an
account's edits (``change_book``) are versions laid over its book (``changes.py``).
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import dataclass, field, fields
from typing import Any, Protocol, cast

import anyio
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from contact_import.sandbox import graph, graph_delta, people
from contact_import.sandbox.book import generate_book
from contact_import.sandbox.changes import ChangeLog
from contact_import.sandbox.dirty import soil, wire_person
from contact_import.sandbox.listing import wire_json
from contact_import.sandbox.oauth import OAuthStore, oauth_routes

__all__ = [
    "Account",
    "Admitted",
    "ApiErrors",
    "Faults",
    "SandboxState",
    "admit",
    "create_sandbox_app",
]

MAX_BOOK_SIZE = 1_000_000


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


@dataclass
class Faults:
    """Failure knobs of one account; every knob is off by default. Counts are per account."""

    rate_limit_every: int = 0  # every Nth request answers 429 with Retry-After
    retry_after: int = 1  # seconds, in that 429's Retry-After header
    server_error_every: int = 0  # every Nth request answers 503
    latency_ms: int = 0  # added before every answer
    # Graph only: every Nth request answers an empty page whose nextLink points where it was
    # (1 would never progress).
    empty_page_every: int = 0
    # Seconds an access token from the OAuth token endpoint stays valid (tokens added with
    # ``add_account`` never expire); 1 forces an expiry mid-import.
    access_token_ttl: int = 3600
    # The user revoked consent: every token of the account answers 401, a refresh invalid_grant.
    revoked: bool = False
    # Every Google syncToken / Graph delta link answers as expired (400 EXPIRED_SYNC_TOKEN, 410).
    expire_sync_tokens: bool = False
    # The account's Nth request (N >= 2), if it carries a page token, answers as an expired one
    # (Google 400 INVALID_ARGUMENT, Graph 410); once, so a restarted listing completes.
    expire_page_token_at: int = 0
    # Every Nth contacts request answers 200 with its JSON body cut off halfway.
    malformed_every: int = 0
    # Every Nth Person of the book is dirty, in rotating ways (NUL or a lone surrogate in an
    # email or a name, no resourceName / id, a "+" canonicalForm, control characters): see
    # ``dirty``. Part of the book: accounts with the same (size, seed, dirty_every) share it.
    dirty_every: int = 0

    @classmethod
    def from_json(cls, data: object) -> Faults:
        """Build from a JSON object; ValueError names the first bad knob."""
        if not isinstance(data, dict):
            raise ValueError("faults must be an object")
        known = {knob.name: knob.default for knob in fields(cls)}
        for name, value in data.items():
            if name not in known:
                raise ValueError(f"unknown fault {name!r}")
            if isinstance(known[name], bool):
                if not isinstance(value, bool):
                    raise ValueError(f"fault {name!r} must be true or false")
            elif not _is_count(value):
                raise ValueError(f"fault {name!r} must be an integer >= 0")
        return cls(**data)


@dataclass
class Account:
    """One fake user of the provider: a book spec, its faults, a request counter, its edits."""

    id: str
    size: int
    seed: int
    faults: Faults = field(default_factory=Faults)
    requests: int = 0
    changes: ChangeLog = field(default_factory=ChangeLog, repr=False)


class SandboxState:
    """Thread-safe registry of accounts (by access token) and of the books they list."""

    def __init__(
        self, default_size: int = 500, default_seed: int = 1, oauth: OAuthStore | None = None
    ) -> None:
        """``default_*``: the book of an account the OAuth servers create without a login hint."""
        self._lock = threading.Lock()
        self._book_lock = threading.Lock()  # apart: building a book must not block lookups
        self._tokens: dict[str, Account] = {}
        self._expires: dict[str, float] = {}  # access token -> time.monotonic() deadline
        self._accounts: dict[str, Account] = {}
        self._books: dict[tuple[int, int, int], Book] = {}
        self._next_id = 1
        self.default_size = default_size
        self.default_seed = default_seed
        self.oauth = oauth or OAuthStore()

    def add_account(
        self, size: int, seed: int = 1, token: str | None = None, faults: Faults | None = None
    ) -> str:
        """Register an account whose book is ``generate_book(size, seed)``; return its token."""
        return self.add_token(self.new_account(size, seed, faults), token)

    def new_account(self, size: int, seed: int = 1, faults: Faults | None = None) -> Account:
        """Register an account whose book is ``generate_book(size, seed)``, without a token."""
        if not 0 <= size <= MAX_BOOK_SIZE:
            raise ValueError(f"size must be between 0 and {MAX_BOOK_SIZE}")
        with self._lock:
            account = Account(f"acct-{self._next_id}", size, seed, faults or Faults())
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
                self._expires[token] = time.monotonic() + ttl
        return token

    def account(self, token: str) -> Account | None:
        """The account ``token`` belongs to; None when unknown, expired or revoked."""
        with self._lock:
            account = self._tokens.get(token)
            if token in self._expires and self._expires[token] <= time.monotonic():
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

    def count_request(self, account: Account) -> int:
        """Count one more API request of ``account``; return its number (1 for the first)."""
        with self._lock:
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
    ) -> dict[str, Any]:
        """Edit the account's book as a new version (see ``changes``); what changed, by kind.

        Modified people get another email and a new name, added ones an email no one has,
        deleted ones are listed as deleted by the next sync. KeyError: no such account.
        """
        if isinstance(token_or_account, str):
            account = self.account(token_or_account) or self.account_by_id(token_or_account)
        else:
            account = token_or_account
        if account is None:
            raise KeyError("no account has this token or id")
        base = self.book(account).people
        change = account.changes.apply(
            base, modified=modified, added=added, deleted=deleted, seed=seed
        )
        return change.summary()


def _book_key(account: Account) -> tuple[int, int, int]:
    return account.size, account.seed, account.faults.dirty_every


def create_sandbox_app(state: SandboxState) -> Starlette:
    """The sandbox's ASGI app, serving the accounts of ``state``."""
    app = Starlette(
        routes=[
            *people.people_routes(admit),
            *graph.graph_routes(admit),
            *graph_delta.delta_routes(admit),
            Route("/_sandbox/accounts", _create_account, methods=["POST"]),
            Route("/_sandbox/accounts/{account_id}/changes", _change_book, methods=["POST"]),
            Route("/_sandbox/healthz", _healthz, methods=["GET"]),
            *oauth_routes(),
        ],
        exception_handlers={HTTPException: _http_error},
    )
    app.state.sandbox = state
    return app


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


async def admit(request: Request, errors: ApiErrors) -> Admitted | Response:
    """Authenticate, count, delay and maybe fault an API request; a Response is the answer."""
    state = _state(request)
    account = state.account(_bearer_token(request))
    if account is None:
        return errors.unauthenticated()
    number = state.count_request(account)
    faults = account.faults
    if faults.latency_ms:
        await anyio.sleep(faults.latency_ms / 1000)
    if faults.server_error_every and number % faults.server_error_every == 0:
        return errors.unavailable()
    if faults.rate_limit_every and number % faults.rate_limit_every == 0:
        return errors.rate_limited(faults.retry_after)
    return Admitted(state, account, number)


def _bearer_token(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


# --- sandbox control ---------------------------------------------------------------------------


async def _create_account(request: Request) -> Response:
    try:
        spec = json.loads(await request.body())
        token = _add_account_from_json(_state(request), spec)
    except ValueError as exc:  # json.JSONDecodeError is a ValueError too
        return JSONResponse({"error": str(exc)}, status_code=400)
    return JSONResponse({"access_token": token}, status_code=201)


def _add_account_from_json(state: SandboxState, spec: object) -> str:
    if not isinstance(spec, dict):
        raise ValueError("expected a JSON object")
    size, seed, token = spec.get("size"), spec.get("seed", 1), spec.get("token")
    if not _is_count(size):
        raise ValueError("size must be an integer >= 0")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ValueError("seed must be an integer")
    if token is not None and (not isinstance(token, str) or not token):
        raise ValueError("token must be a non-empty string")
    faults = Faults.from_json(spec.get("faults", {}))
    return state.add_account(cast(int, size), seed, token, faults)


async def _change_book(request: Request) -> Response:
    """{"modified", "added", "deleted", "seed"} -> 200 what changed; the id may be a token."""
    try:
        spec = json.loads(await request.body())
        if not isinstance(spec, dict) or not all(_is_count(v) for v in spec.values()):
            raise ValueError("expected an object of integers >= 0")
        unknown = set(spec) - {"modified", "added", "deleted", "seed"}
        if unknown:
            raise ValueError(f"unknown change {sorted(unknown)[0]!r}")
        changed = _state(request).change_book(request.path_params["account_id"], **spec)
    except KeyError:
        return JSONResponse({"error": "no such account"}, status_code=404)
    except ValueError as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    return JSONResponse(changed)


async def _healthz(request: Request) -> Response:
    return JSONResponse({"ok": True})


async def _http_error(request: Request, exc: Exception) -> Response:
    code = exc.status_code if isinstance(exc, HTTPException) else 500
    detail = exc.detail if isinstance(exc, HTTPException) else "Internal error."
    return JSONResponse({"error": {"code": code, "message": detail}}, status_code=code)


def _state(request: Request) -> SandboxState:
    return cast(SandboxState, request.app.state.sandbox)


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
