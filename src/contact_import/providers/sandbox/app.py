"""The sandbox provider as an ASGI app: Google's People API and Microsoft Graph's contacts over
real HTTP, with fault knobs.

Routes:

    GET  /v1/people/me/connections   people.connections.list, as Google answers it
    GET  /v1.0/me/contacts           the same books as Graph answers them (see ``graph.py``)
    POST /_sandbox/accounts          {"size", "seed", "faults", "token"?} -> 201 {"access_token"}
    GET  /_sandbox/healthz           {"ok": true}

Accounts live in a ``SandboxState`` shared by every request; their books are generated on first
use and shared by accounts with the same (size, seed). Books are read-only once built.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
import threading
from dataclasses import dataclass, field, fields
from typing import Any, Protocol, cast

import anyio
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from contact_import.providers.sandbox import graph
from contact_import.providers.sandbox.book import generate_book

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
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000

# What the sandbox's Persons carry; a mask asking for all of them is served without copying.
_SERVED_FIELDS = frozenset({"names", "emailAddresses", "phoneNumbers", "metadata"})
# Every path Google accepts in personFields (we hold data for the four above only).
_VALID_PERSON_FIELDS = _SERVED_FIELDS | {
    "addresses", "ageRanges", "biographies", "birthdays", "calendarUrls", "clientData",
    "coverPhotos", "events", "externalIds", "genders", "imClients", "interests", "locales",
    "locations", "memberships", "miscKeywords", "nicknames", "occupations", "organizations",
    "photos", "relations", "sipAddresses", "skills", "urls", "userDefined",
}  # fmt: skip
_SORT_ORDERS = frozenset(
    {"LAST_MODIFIED_ASCENDING", "LAST_MODIFIED_DESCENDING", "FIRST_NAME_ASCENDING",
     "LAST_NAME_ASCENDING"}
)  # fmt: skip
_UNAUTHENTICATED = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie "
    "or other valid authentication credential. "
    "See https://developers.google.com/identity/sign-in/web/devconsole-project."
)
_WWW_AUTHENTICATE = {"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'}
_MASK_REQUIRED = (
    "personFields mask is required. Please specify one or more valid paths. Valid paths are "
    "documented at https://developers.google.com/people/api/rest/v1/people.connections/list."
)
_BAD_PAGE_TOKEN = "Request contains an invalid argument: the page token is not valid."  # noqa: S105
_QUOTA_EXCEEDED = (
    "Quota exceeded for quota metric 'Read requests' and limit 'Read requests per minute per "
    "user' of service 'people.googleapis.com'."
)


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
                encoded[index] = _dumps(self.people[index])
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

    @classmethod
    def from_json(cls, data: object) -> Faults:
        """Build from a JSON object; ValueError names the first bad knob."""
        if not isinstance(data, dict):
            raise ValueError("faults must be an object")
        known = {knob.name for knob in fields(cls)}
        for name, value in data.items():
            if name not in known:
                raise ValueError(f"unknown fault {name!r}")
            if not _is_count(value):
                raise ValueError(f"fault {name!r} must be an integer >= 0")
        return cls(**data)


@dataclass
class Account:
    """One fake user of the provider: a book spec, its faults and a request counter."""

    id: str
    size: int
    seed: int
    faults: Faults = field(default_factory=Faults)
    requests: int = 0


class SandboxState:
    """Thread-safe registry of accounts (by access token) and of the books they list."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._book_lock = threading.Lock()  # apart: building a book must not block lookups
        self._tokens: dict[str, Account] = {}
        self._books: dict[tuple[int, int], Book] = {}
        self._next_id = 1

    def add_account(
        self, size: int, seed: int = 1, token: str | None = None, faults: Faults | None = None
    ) -> str:
        """Register an account whose book is ``generate_book(size, seed)``; return its token."""
        if not 0 <= size <= MAX_BOOK_SIZE:
            raise ValueError(f"size must be between 0 and {MAX_BOOK_SIZE}")
        with self._lock:
            account = Account(f"acct-{self._next_id}", size, seed, faults or Faults())
            self._next_id += 1
        return self.add_token(account, token)

    def add_token(self, account: Account, token: str | None = None) -> str:
        """Give ``account`` another valid access token (what a refresh does)."""
        token = token or secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[token] = account
        return token

    def account(self, token: str) -> Account | None:
        """The account ``token`` belongs to, or None."""
        with self._lock:
            return self._tokens.get(token)

    def count_request(self, account: Account) -> int:
        """Count one more API request of ``account``; return its number (1 for the first)."""
        with self._lock:
            account.requests += 1
            return account.requests

    def cached_book(self, account: Account) -> Book | None:
        """The account's book if it was already built, else None (without building it)."""
        return self._books.get((account.size, account.seed))

    def book(self, account: Account) -> Book:
        """The account's book, built on first use (slow for large books: call off the loop)."""
        key = (account.size, account.seed)
        with self._book_lock:
            if key not in self._books:
                self._books[key] = Book(generate_book(account.size, account.seed))
            return self._books[key]


def create_sandbox_app(state: SandboxState) -> Starlette:
    """The sandbox's ASGI app, serving the accounts of ``state``."""
    app = Starlette(
        routes=[
            Route("/v1/people/me/connections", _list_connections, methods=["GET"]),
            *graph.graph_routes(admit),
            Route("/_sandbox/accounts", _create_account, methods=["POST"]),
            Route("/_sandbox/healthz", _healthz, methods=["GET"]),
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


# --- Google People API -----------------------------------------------------------------------


class _InvalidArgument(Exception):
    """A query Google would refuse with 400 INVALID_ARGUMENT."""


@dataclass(frozen=True, slots=True)
class _ConnectionsQuery:
    person_fields: frozenset[str]
    page_size: int
    sort_order: str
    offset: int = 0

    def fingerprint(self, account: Account, offset: int) -> str:
        # A page token is only valid for its own offset, its account and the parameters that
        # produced it (Google: "all other parameters must match the first call").
        text = "|".join(
            (account.id, str(account.size), str(account.seed), str(self.page_size),
             ",".join(sorted(self.person_fields)), self.sort_order, str(offset))
        )  # fmt: skip
        return hashlib.sha256(text.encode()).hexdigest()[:16]


async def _list_connections(request: Request) -> Response:
    admitted = await admit(request, _GoogleErrors())
    if isinstance(admitted, Response):
        return admitted
    try:
        query = _parse_query(request.query_params, admitted.account)
    except _InvalidArgument as exc:
        return _google_error(400, "INVALID_ARGUMENT", str(exc))
    book = await admitted.book()
    return Response(_connections_page(book, query, admitted.account), media_type="application/json")


class _GoogleErrors:
    def unauthenticated(self) -> Response:
        return _google_error(401, "UNAUTHENTICATED", _UNAUTHENTICATED, _WWW_AUTHENTICATE)

    def unavailable(self) -> Response:
        return _google_error(503, "UNAVAILABLE", "The service is currently unavailable.")

    def rate_limited(self, retry_after: int) -> Response:
        headers = {"Retry-After": str(retry_after)}
        return _google_error(429, "RESOURCE_EXHAUSTED", _QUOTA_EXCEEDED, headers)


def _parse_query(params: QueryParams, account: Account) -> _ConnectionsQuery:
    query = _ConnectionsQuery(
        person_fields=_person_fields(params.get("personFields", "")),
        page_size=_page_size(params.get("pageSize", "")),
        sort_order=_sort_order(params.get("sortOrder", "")),
    )
    page_token = params.get("pageToken", "")
    if not page_token:
        return query
    offset, fingerprint = _read_page_token(page_token)
    if not 0 < offset < account.size or fingerprint != query.fingerprint(account, offset):
        raise _InvalidArgument(_BAD_PAGE_TOKEN)
    return _ConnectionsQuery(query.person_fields, query.page_size, query.sort_order, offset)


def _person_fields(mask: str) -> frozenset[str]:
    paths = frozenset(path.strip() for path in mask.split(",") if path.strip())
    if not paths:
        raise _InvalidArgument(_MASK_REQUIRED)
    unknown = sorted(paths - _VALID_PERSON_FIELDS)
    if unknown:
        raise _InvalidArgument(f'Invalid personFields mask path: "{unknown[0]}". {_MASK_REQUIRED}')
    return paths


def _page_size(text: str) -> int:
    try:
        size = int(text) if text else 0
    except ValueError:
        raise _InvalidArgument(f"Invalid value at 'page_size' (TYPE_INT32), \"{text}\"") from None
    if not 0 <= size <= MAX_PAGE_SIZE:
        raise _InvalidArgument("Page size must be between 1 and 1000.")
    return size or DEFAULT_PAGE_SIZE  # 0 means "unset", as for Google


def _sort_order(text: str) -> str:
    if text and text not in _SORT_ORDERS:
        raise _InvalidArgument(f"Invalid value at 'sort_order', \"{text}\"")
    return text or "LAST_MODIFIED_ASCENDING"


def _page_token(offset: int, fingerprint: str) -> str:
    raw = json.dumps({"o": offset, "f": fingerprint}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _read_page_token(token: str) -> tuple[int, str]:
    """(offset, fingerprint) of a page token; _InvalidArgument when it is not one of ours."""
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError):
        raise _InvalidArgument(_BAD_PAGE_TOKEN) from None
    if not isinstance(data, dict) or not _is_count(data.get("o")):
        raise _InvalidArgument(_BAD_PAGE_TOKEN)
    return cast(int, data["o"]), str(data.get("f"))


def _connections_page(book: Book, query: _ConnectionsQuery, account: Account) -> bytes:
    """The response body, assembled from pre-encoded Persons (a ``dict`` would re-encode them)."""
    start, end = query.offset, min(query.offset + query.page_size, len(book))
    members: list[bytes] = []
    if end > start:
        members.append(b'"connections":[' + b",".join(_page_people(book, query, end)) + b"]")
    if end < len(book):
        members.append(
            b'"nextPageToken":' + _dumps(_page_token(end, query.fingerprint(account, end)))
        )
    members.append(b'"totalPeople":%d,"totalItems":%d' % (len(book), len(book)))
    return b"{" + b",".join(members) + b"}"


def _page_people(book: Book, query: _ConnectionsQuery, end: int) -> list[bytes]:
    if query.person_fields >= _SERVED_FIELDS:
        return book.people_json(query.offset, end)
    keep = query.person_fields | {"resourceName", "etag"}
    people = book.people[query.offset : end]
    return [_dumps({key: value for key, value in p.items() if key in keep}) for p in people]


def _dumps(value: object) -> bytes:
    # As Starlette's JSONResponse and Google: compact, UTF-8, non-ASCII left as is.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _google_error(
    code: int, status: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "status": status}}
    return JSONResponse(body, status_code=code, headers=headers)


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
