"""What the Google and Microsoft adapters share: how they are built and how they GET a page.

A subclass names its provider and API (``label``, ``api_name``), the path of its listing below
the configured API URL (``path``), how it walks that listing (``fetch_page``), and what its
API's error bodies say beyond the status (``error_codes``, ``throttled``, ``refused``: the
per-API rules of ``providers.classify``; the skeleton and the 401/403 rules are shared).
Every adapter is built with the same keyword arguments, so one code path builds any of them
(``runner.sources``). The access token goes in the ``Authorization`` header only; it is
never part of a repr, a message or a log line.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

import httpx

from contact_import.errors import ContactImportError
from contact_import.providers.base import ContactPage
from contact_import.providers.classify import ErrorBody, api_rules, classify_response
from contact_import.providers.http import (
    ErrorForResponse,
    RetryPolicy,
    get_with_retries,
    json_object,
    wait_while_parsing_held,
)

__all__ = ["MAX_PAGE_SIZE", "ApiContactSource"]

MAX_PAGE_SIZE = 1000  # both APIs' largest page (Google pageSize, Graph odata.maxpagesize)


class ApiContactSource(ABC):
    """A ``ContactSource`` over one HTTP API, reached with a bearer token."""

    label: ClassVar[str]  # the provider as a user reads it, in our messages: "Google"
    api_name: ClassVar[str]  # "Google People API"
    path: ClassVar[str]  # of the listing, below the configured API URL
    error_code_key: ClassVar[str] = "code"  # the field of the error object our detail names

    def __init__(
        self,
        client: httpx.Client,
        *,
        api_url: str,
        access_token: str,
        page_size: int = MAX_PAGE_SIZE,
        max_retries: int = 3,
        max_retry_after: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        sync_token: str | None = None,
    ) -> None:
        """``sync_token``: what an earlier listing's last page handed out; None lists all."""
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
        self._client = client
        self._url = api_url.rstrip("/") + self.path
        self._headers = {"Authorization": f"Bearer {access_token}"} | self._headers_for(page_size)
        self._page_size = page_size
        self._policy = RetryPolicy(max_retries, max_retry_after, sleep)
        self._sync_token = sync_token or None

    def __repr__(self) -> str:
        mode = "incremental" if self._sync_token else "full"
        return f"{type(self).__name__}(url={self._url!r}, page_size={self._page_size}, {mode})"

    @abstractmethod
    def fetch_page(self, cursor: str | None) -> ContactPage:
        """Fetch the page at ``cursor`` (None: the first page, of changes if given a sync token)."""

    def _headers_for(self, page_size: int) -> dict[str, str]:
        """Headers the API wants on every call besides the token (none unless overridden)."""
        return {}

    def _get_json(
        self,
        url: str,
        params: Mapping[str, str] | None,
        errors: ErrorForResponse | None = None,
    ) -> dict[str, Any]:
        """GET ``url`` with retries; the 2xx body as a JSON object, else one of our errors.

        ``params`` None sends ``url`` exactly as given (a provider's next-page link, say);
        ``errors`` replaces ``error_for_response`` for this call.
        """
        response = get_with_retries(
            self._client,
            url,
            api_name=self.api_name,
            headers=self._headers,
            error_for_response=errors or self.error_for_response,
            policy=self._policy,
            params=params,
        )
        wait_while_parsing_held()  # a page fetched ahead: parsed when the importer lets it
        return json_object(response, self.api_name)

    @classmethod
    def error_for_response(cls, response: httpx.Response, *, now: float) -> ContactImportError:
        """The exception a non-2xx answer of this API stands for."""
        rules = api_rules(
            cls.label,
            cls.api_name,
            code_key=cls.error_code_key,
            codes=cls.error_codes,
            throttled=cls.throttled,
            refusals=(cls.refused,),
        )
        return classify_response(response, rules, now=now)

    @staticmethod
    def error_codes(error: dict[str, Any]) -> Iterable[str]:
        """The codes or reasons the API's ``error`` object names, for the two rules below."""
        return ()

    @staticmethod
    def throttled(status: int, body: ErrorBody) -> bool:
        """True when an answer other than a 429 means "slow down"."""
        return False

    @staticmethod
    def refused(status: int, body: ErrorBody) -> ContactImportError | None:
        """The error a 4xx other than 401/403 stands for when it is not RequestRejected."""
        return None
