"""Fetch the next page in the background while the current one is being written.

The database wait of one page releases the GIL, so the provider round trip and JSON decoding of
the next page overlap with it. At most one page is ever in flight.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Generic, TypeVar

__all__ = ["PageAhead"]

T = TypeVar("T")


class PageAhead(Generic[T]):
    """``request(cursor)`` starts fetching; ``take()`` returns it (or raises what it raised)."""

    def __init__(
        self, fetch: Callable[[str | None], T], abandoned: threading.Event | None = None
    ) -> None:
        self._fetch = fetch
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="page-ahead")
        self._pending: Future[T] | None = None
        # Set on close: the fetch's retry waits watch it and give up early.
        self.abandoned = abandoned or threading.Event()

    def request(self, cursor: str | None) -> None:
        if self._pending is not None:
            raise RuntimeError("a page is already being fetched")
        self._pending = self._pool.submit(self._fetch, cursor)

    def take(self) -> T:
        if self._pending is None:
            raise RuntimeError("no page was requested")
        pending, self._pending = self._pending, None
        return pending.result()

    def close(self) -> None:
        """Give up on a page in flight without waiting for it (its retry waits stop early)."""
        self.abandoned.set()
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        self._pool.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> PageAhead[T]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
