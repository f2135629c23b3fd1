"""A job's provider listing: its client, how a page is fetched, and the next page fetched ahead.

``Listing.fetch`` gets one page: it refreshes the access token once after a 401 and lists
from the top when the provider no longer accepts the cursor, then normalizes the contacts
(or hands them over as listed: see ``mostly_skipped``). ``Listing.fetch_ahead`` does the
same on a helper thread while the importer writes the page before it (``runner.importer``).
One thread uses a listing at a time: the importer waits for the page ahead before it fetches
again. Fetching writes nothing but what the provider's answers require (a cleared sync token,
a refreshed grant), so a page fetched ahead that is not needed is simply dropped.

While a page is fetched ahead, the helper thread parses and normalizes in Python as the
importer's thread waits on the database, and every answer the importer gets must take the GIL
back from the helper. Two things keep that short:

* on Postgres the helper sends its request at once but parses the answer only once the page
  write is in its long wait on the database (``PageAhead.release``, called by ``store.page``
  as the page's writes are sent, their parameters built, or the lookup that skips the
  unchanged contacts of a page handed over as listed): the page's short round trips and its
  Python before that (lock, lookups, plan, checkpoint) no longer wait for a parse to give
  the GIL back (``docs/performance.md``).
  On SQLite, in process, there are no round trips to protect: it parses at once;
* ``runner.interpreter`` shortens the GIL's switch interval.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from functools import partial
from typing import NamedTuple, Protocol

from contact_import.domain.contact import normalize_contact
from contact_import.errors import AccessTokenExpired, CursorExpired
from contact_import.providers.base import ContactPage, ContactSource
from contact_import.providers.http import parsing_held_until
from contact_import.store.grants import GrantStore
from contact_import.store.jobs import Job, PageCounts
from contact_import.store.page import Listed

__all__ = ["FetchedPage", "Listing", "PageAhead", "SourceFor", "mostly_skipped"]

log = logging.getLogger("contact_import.importer")

# Listings restarted from the top in one run (expired cursors) before giving up for now.
_MAX_RESTARTS = 2
# A page at least this share of which was skipped: the next one is likely unchanged at the
# provider too (a full re-import), so its contacts go to the page write as listed, which
# normalizes only those that changed, instead of all of them being normalized ahead.
_SKIPPED_SHARE_TO_DEFER = 0.5


class SourceFor(Protocol):
    """Builds the provider client of a job (see runner/sources.py)."""

    def __call__(
        self,
        job: Job,
        *,
        sleep: Callable[[float], None],
        refresh: bool = False,
        incremental: bool = True,
    ) -> ContactSource: ...


class FetchedPage(NamedTuple):
    page: ContactPage
    incoming: list[Listed]


def mostly_skipped(counts: PageCounts, listed: int) -> bool:
    """Whether the next page should go to the page write as listed (see above)."""
    return listed > 0 and counts.skipped >= _SKIPPED_SHARE_TO_DEFER * listed


class Listing:
    """The job's provider listing: its client, rebuilt after a token refresh or a restart."""

    def __init__(
        self,
        sources: SourceFor,
        job: Job,
        sleep: Callable[[float], None],
        *,
        grants: GrantStore,
        region: str | None,
    ) -> None:
        self._sources, self._job, self._sleep = sources, job, sleep
        self._grants, self._region = grants, region
        self.source = sources(job, sleep=sleep)
        self.refreshed = False  # one refresh per page: a second 401 is a real error
        self.restarts = 0

    def fetch(self, cursor: str | None, defer: bool = False) -> FetchedPage:
        """The page at ``cursor``, normalized (``defer``: as listed, for the page write to
        normalize what changed)."""
        job_id = str(self._job.id)
        while True:
            try:
                page = self.source.fetch_page(cursor)
            except AccessTokenExpired:
                if self.refreshed:
                    raise
                log.info("access token refused; refreshing it", extra={"job_id": job_id})
                self._refresh()
                continue
            except CursorExpired:
                if self.restarts >= _MAX_RESTARTS:
                    raise
                log.info("cursor expired; listing from the top", extra={"job_id": job_id})
                if self._job.grant_id is not None:
                    self._grants.clear_sync_token(self._job.grant_id)
                self._restart_full()
                cursor = None  # contacts this job already recorded are not counted again
                continue
            self.refreshed = False
            if defer:
                return FetchedPage(page, list(page.contacts))
            return FetchedPage(page, [normalize_contact(c, self._region) for c in page.contacts])

    def fetch_ahead(self, cursor: str, defer: bool) -> PageAhead:
        """Start fetching the page at ``cursor`` on a helper thread."""
        return PageAhead(partial(self.fetch, cursor, defer), self._job.id.hex)

    def _refresh(self) -> None:
        self.source = self._sources(self._job, sleep=self._sleep, refresh=True)
        self.refreshed = True

    def _restart_full(self) -> None:
        self.source = self._sources(self._job, sleep=self._sleep, incremental=False)
        self.restarts += 1


class PageAhead:
    """The next page, fetched on a helper thread while the current one is written.

    The request goes out at once; its answer is parsed after ``release`` (see the module
    doc), which the importer calls when the page write is about to wait on the database, and
    in any case once the page write is over, and which ``result`` calls first.

    One thread per page, a daemon: an abandoned page's thread ends on its own (released, its
    provider waits give up once the run is over, an HTTP call in flight runs to its timeout),
    and what it fetched is dropped; it never holds up the process's exit.
    """

    def __init__(self, fetch: Callable[[], FetchedPage], job_id: str) -> None:
        self._future: Future[FetchedPage] = Future()
        self._parse = threading.Event()
        name = f"fetch-ahead-{job_id[:8]}"
        threading.Thread(target=self._run, args=(fetch,), name=name, daemon=True).start()

    def _run(self, fetch: Callable[[], FetchedPage]) -> None:
        try:
            with parsing_held_until(self._parse):
                page = fetch()
            self._future.set_result(page)
        except BaseException as exc:  # handed to the importer's thread, which decides
            self._future.set_exception(exc)

    def release(self) -> None:
        """Let the helper parse what it fetched (idempotent; any thread)."""
        self._parse.set()

    def result(self) -> FetchedPage:
        """The page, or what fetching it raised (raised here, in the importer's thread)."""
        self.release()
        return self._future.result()
