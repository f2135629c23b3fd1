"""What every provider adapter does the same way over HTTP: one GET, retried when it is worth it.

A rate limit (honouring ``Retry-After``, capped), a 5xx, a timeout or a refused connection is
retried a few times with backoff; whatever is still wrong after that leaves as a
``contact_import.errors`` exception, never an httpx one: ``map_httpx_errors`` is the one place
httpx's exceptions become ours, for the contacts APIs and the OAuth token endpoints alike.
Nothing here knows a provider's error bodies: each caller passes its own ``ErrorForResponse``
(``providers.classify``).
"""

from __future__ import annotations

import email.utils
import itertools
import json
import logging
import math
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any, Protocol

import httpx
import orjson

from contact_import.domain.job import backoff_seconds
from contact_import.errors import (
    ContactImportError,
    MalformedResponse,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
    RequestRejected,
)

__all__ = [
    "ErrorForResponse",
    "RetryPolicy",
    "get_with_retries",
    "json_object",
    "map_httpx_errors",
    "parse_retry_after",
    "parsing_held_until",
    "wait_while_parsing_held",
]

logger = logging.getLogger(__name__)
_FIRST_RETRY_SECONDS = 0.5


class ErrorForResponse(Protocol):
    """Maps a provider's non-2xx answer to the exception it stands for."""

    def __call__(self, response: httpx.Response, *, now: float) -> ContactImportError: ...


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long an adapter waits before giving a transient error to the runner."""

    max_retries: int = 3
    max_retry_after: float = 30.0  # caps both Retry-After and the backoff
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)
    jitter: Callable[[], float] = field(default=random.random, compare=False)

    def delay(self, error: ProviderError, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt + 1`` (``attempt`` counts from 0)."""
        if isinstance(error, RateLimited) and error.retry_after is not None:
            return min(error.retry_after, self.max_retry_after)
        # The job backoff's formula, scaled down: these waits happen inside one page fetch.
        return backoff_seconds(
            attempt + 1, self.jitter(), base=_FIRST_RETRY_SECONDS, cap=self.max_retry_after
        )


def get_with_retries(
    client: httpx.Client,
    url: str,
    *,
    api_name: str,
    headers: Mapping[str, str],
    error_for_response: ErrorForResponse,
    policy: RetryPolicy,
    params: Mapping[str, str] | None = None,
) -> httpx.Response:
    """GET ``url``; a 2xx response, or the ProviderError it still is after ``policy``'s retries.

    ``params`` None sends ``url`` exactly as given (a provider's next-page link, say).
    """
    for attempt in itertools.count():
        try:
            return _get(
                client,
                url,
                api_name=api_name,
                headers=headers,
                params=params,
                error_for_response=error_for_response,
            )
        except (RateLimited, ProviderUnavailable) as error:
            if attempt >= policy.max_retries:
                raise
            delay = policy.delay(error, attempt)
            logger.warning(
                "%s: %s; retry %d of %d in %.2fs",
                api_name, error, attempt + 1, policy.max_retries, delay,
            )  # fmt: skip
            policy.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def _get(
    client: httpx.Client,
    url: str,
    *,
    api_name: str,
    headers: Mapping[str, str],
    params: Mapping[str, str] | None,
    error_for_response: ErrorForResponse,
) -> httpx.Response:
    with map_httpx_errors(api_name):
        response = client.get(url, params=params, headers=headers)
    if response.is_success:
        return response
    raise error_for_response(response, now=time.time())


@contextmanager
def map_httpx_errors(
    api_name: str, *, bad_url: type[ContactImportError] = RequestRejected
) -> Iterator[None]:
    """Raise ours for the httpx exception raised inside (as httpx's ``map_httpcore_exceptions``).

    ``bad_url`` is what an invalid URL is: a misconfiguration, so never worth a retry.
    """
    try:
        yield
    except httpx.TimeoutException as exc:
        raise ProviderUnavailable(f"{api_name} did not answer in time") from exc
    except httpx.DecodingError as exc:
        raise MalformedResponse(f"{api_name} sent a body that does not decode") from exc
    except httpx.HTTPError as exc:
        raise ProviderUnavailable(f"could not reach {api_name} ({type(exc).__name__})") from exc
    except httpx.InvalidURL as exc:
        raise bad_url(f"the {api_name} URL is not valid") from exc


# Per thread: the gate a response body waits for before it is parsed (``parsing_held_until``).
_parsing = threading.local()


@contextmanager
def parsing_held_until(gate: threading.Event) -> Iterator[None]:
    """In this thread, an answer of a contacts API is parsed only once ``gate`` is set
    (``wait_while_parsing_held``, which ``ApiContactSource._get_json`` calls before parsing:
    the contacts pages, and the folder lists a Microsoft page may need after its first).

    For the thread that fetches a page ahead (``runner.listing``): the request goes out at
    once, but parsing the answer (one call into orjson that holds the GIL for milliseconds,
    then the contacts in Python) waits until the importer's thread is in a long wait on the
    database, instead of holding up each of its short round trips on the way there. Nothing
    else waits: a token refresh, an error body, a profile are handled as they come. That is
    on purpose: a token refresh holds the grant's lock (on SQLite the database's write lock)
    while it waits for the token endpoint, and a gate that whoever holds such a lock waits
    for is a deadlock in waiting; a first version that held every answer met one (on SQLite,
    when the page write still opened the gate inside its transaction).
    """
    _parsing.gate = gate
    try:
        yield
    finally:
        _parsing.gate = None


def wait_while_parsing_held() -> None:
    """Return once this thread may parse a contacts page (at once unless ``parsing_held_until``)."""
    gate: threading.Event | None = getattr(_parsing, "gate", None)
    if gate is not None:
        gate.wait()


def json_object(response: httpx.Response, api_name: str) -> dict[str, Any]:
    """The response's body as a JSON object; MalformedResponse when it is anything else."""
    try:
        body = _loads(response.content)
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise MalformedResponse(f"{api_name} sent a body that is not JSON") from None
    if not isinstance(body, dict):
        raise MalformedResponse(f"{api_name} sent JSON that is not an object")
    return body


def _loads(content: bytes) -> Any:
    try:
        return orjson.loads(content)  # several times faster than json on big pages
    except orjson.JSONDecodeError:
        # orjson refuses a lone surrogate escape ("\ud800"), which is valid JSON and which
        # providers do send in a name; the standard library keeps it, and normalization then
        # replaces it in that one contact. Only a page orjson refused pays for a second parse.
        return json.loads(content)


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """``Retry-After`` in seconds from now: delta-seconds or an HTTP date. None when unreadable."""
    if not value or not value.strip():
        return None
    try:
        seconds = float(value)
    except ValueError:
        return _seconds_until(value, now)
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _seconds_until(http_date: str, now: float) -> float | None:
    try:
        when = email.utils.parsedate_to_datetime(http_date)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)
