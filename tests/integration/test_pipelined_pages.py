"""Pipelined pages: page N+1 is fetched while page N's transaction runs; the fence stays as strict.

On both backends, against the sandbox over loopback. The importer fetches ahead on a helper
thread; these tests pin down that it really does (a page's commit waits for the next page's
fetch to have started, and would time out without pipelining), and that a lease lost while a
page is fetched ahead writes nothing more: the page being written is rolled back or was
committed under the lease, the page fetched ahead is dropped, the next owner finishes exactly.
"""

from __future__ import annotations

import gc
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, update

from contact_import.domain.job import JobStatus
from contact_import.providers.base import ContactPage, ContactSource
from contact_import.runner.importer import ImportBudget, Outcome, SourceFor
from contact_import.runner.interpreter import GC_YOUNG_THRESHOLD, GIL_SWITCH_INTERVAL
from contact_import.runtime import Runtime
from contact_import.sandbox.server import RunningSandbox
from contact_import.settings import Settings
from contact_import.store.schema import jobs as contact_import_jobs
from tests.helpers import (
    Counts,
    assert_consistent,
    drain,
    importer_reading,
    queue_import,
    stored_state,
)

PAGE = 200
SIZE = 1000  # five pages


def _fetch_hook(
    hook: Callable[[int], None],
    sources: SourceFor,
    parsed: Callable[[int], None] = lambda n: None,
) -> SourceFor:
    """``sources`` whose listings call ``hook(n)`` before fetching their n-th page (from 0),
    and ``parsed(n)`` once it is fetched and parsed."""

    class Source:
        def __init__(self, inner: ContactSource) -> None:
            self.inner, self.fetched = inner, 0

        def fetch_page(self, cursor: str | None) -> ContactPage:
            n, self.fetched = self.fetched, self.fetched + 1
            hook(n)
            page = self.inner.fetch_page(cursor)
            parsed(n)
            return page

    return lambda job, **kwargs: Source(sources(job, **kwargs))


def test_the_next_page_is_fetched_while_this_one_is_written(
    settings_for: Callable[..., Settings], sandbox: RunningSandbox
) -> None:
    """Each page's commit waits (up to 10 s) until the next page's fetch has begun: without
    pipelining that fetch starts only after the commit, every wait times out, and so does
    this test's check."""
    with Runtime.build(settings_for(page_size=PAGE)) as rt:
        started = [threading.Event() for _ in range(SIZE // PAGE + 1)]
        fetch_threads: list[str] = []
        commits: list[bool] = []  # per page commit: whether the next fetch had begun in time
        importer_thread = threading.get_ident()
        in_page = threading.local()

        def fetching(n: int) -> None:
            fetch_threads.append(threading.current_thread().name)
            started[n].set()

        @event.listens_for(rt.engine, "before_cursor_execute")
        def checkpoint_seen(*args: Any) -> None:
            statement = args[2]
            if "processed_contacts" in statement and statement.startswith("UPDATE"):
                in_page.yes = True

        @event.listens_for(rt.engine, "commit")
        def page_commit(conn: Any) -> None:
            if threading.get_ident() != importer_thread or not getattr(in_page, "yes", False):
                return
            in_page.yes = False
            page = len(commits)
            last = page == SIZE // PAGE - 1
            commits.append(last or started[page + 1].wait(timeout=10))

        job = queue_import(rt, sandbox, "pia", size=SIZE, seed=4)
        importer = importer_reading(rt, _fetch_hook(fetching, rt.importer._sources))
        (claimed,) = rt.jobs.claim("w1", 1).jobs
        assert importer.run(claimed, ImportBudget()) is Outcome.COMPLETED
        assert commits == [True] * (SIZE // PAGE)
        # The first page is fetched by the importer's thread, every later one ahead.
        assert fetch_threads[0] == threading.current_thread().name
        assert all(name.startswith("fetch-ahead-") for name in fetch_threads[1:])
        assert_consistent(rt.engine, rt.jobs.get(job.id), SIZE)


def test_the_page_ahead_is_parsed_only_once_this_page_waits_on_its_writes(
    settings_for: Callable[..., Settings], sandbox: RunningSandbox
) -> None:
    """On Postgres the helper asks for page n+1 at once but parses the answer only when page
    n's write is about to wait on the database (``runner.listing``), so page n's short round
    trips do not wait for the GIL behind a parse. At page n's checkpoint, its last statement
    before the writes, page n+1 is still not parsed when given 0.3 s more; without the hold
    its 200 contacts over loopback are parsed in milliseconds. Once the write statement is
    sent, it is parsed while the importer's thread waits. SQLite has no round trips: the
    helper is let go when the page write starts, and has parsed by then. The import is
    complete and exact on both."""
    size = 3 * PAGE
    with Runtime.build(settings_for(page_size=PAGE)) as rt:
        held = rt.engine.dialect.name == "postgresql"
        parsed = [threading.Event() for _ in range(size // PAGE)]
        at_checkpoint: list[bool] = []  # page n's checkpoint: was page n+1 parsed already?
        at_write: list[bool] = []  # page n's write statement sent: is page n+1 parsed now?
        importer_thread = threading.get_ident()

        @event.listens_for(rt.engine, "before_cursor_execute")
        def checkpoint_and_write(*args: Any) -> None:
            statement = args[2]
            if threading.get_ident() != importer_thread:
                return
            if statement.startswith("UPDATE") and "processed_contacts" in statement:
                page = len(at_checkpoint)
                if page + 1 < len(parsed):
                    at_checkpoint.append(parsed[page + 1].wait(timeout=0.3 if held else 10))
            elif statement.startswith("WITH created_rows"):  # Postgres: the page's writes
                page = len(at_write)
                if page + 1 < len(parsed):  # released: the helper parses while we wait here
                    at_write.append(parsed[page + 1].wait(timeout=10))

        job = queue_import(rt, sandbox, "pia-parse", size=size, seed=4)
        sources = _fetch_hook(lambda n: None, rt.importer._sources, lambda n: parsed[n].set())
        importer = importer_reading(rt, sources)
        (claimed,) = rt.jobs.claim("w1", 1).jobs
        assert importer.run(claimed, ImportBudget()) is Outcome.COMPLETED
        assert at_checkpoint == [not held] * (size // PAGE - 1)
        assert at_write == ([True] * (size // PAGE - 1) if held else [])
        assert all(page.is_set() for page in parsed)
        assert_consistent(rt.engine, rt.jobs.get(job.id), size)


def test_without_pipelining_each_page_is_fetched_after_the_one_before_is_written(
    settings_for: Callable[..., Settings], sandbox: RunningSandbox
) -> None:
    with Runtime.build(settings_for(page_size=PAGE, pipeline_pages=False)) as rt:
        seen: list[tuple[str, int]] = []

        def fetching(n: int) -> None:
            seen.append((threading.current_thread().name, rt.jobs.get(job.id).pages_done))

        job = queue_import(rt, sandbox, "quinn", size=SIZE, seed=4)
        importer = importer_reading(
            rt, _fetch_hook(fetching, rt.importer._sources), pipeline=rt.settings.pipeline_pages
        )
        (claimed,) = rt.jobs.claim("w1", 1).jobs
        assert importer.run(claimed, ImportBudget()) is Outcome.COMPLETED
        me = threading.current_thread().name
        assert seen == [(me, n) for n in range(SIZE // PAGE)]


def test_an_importer_sets_the_interpreter_for_imports_and_never_undoes_a_stronger_setting(
    settings_for: Callable[..., Settings],
) -> None:
    """``runner.interpreter``: building a runtime raises the collector's first threshold; a
    pipelining one also lowers the GIL switch interval, a sequential one leaves it. A process
    that already went further (or turned automatic collection off) keeps its own."""
    interval, thresholds = sys.getswitchinterval(), gc.get_threshold()
    try:
        sys.setswitchinterval(0.005)  # CPython's defaults, whatever ran in this process before
        gc.set_threshold(700, 10, 10)
        with Runtime.build(settings_for(pipeline_pages=False)):
            assert sys.getswitchinterval() == 0.005
            assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, 10, 10)
        with Runtime.build(settings_for()):
            assert sys.getswitchinterval() == pytest.approx(GIL_SWITCH_INTERVAL)
        sys.setswitchinterval(0.0001)
        lower = sys.getswitchinterval()  # as CPython stores it (whole microseconds)
        gc.set_threshold(50_000, 20, 5)
        with Runtime.build(settings_for()):
            assert sys.getswitchinterval() == lower
            assert gc.get_threshold() == (50_000, 20, 5)
        gc.set_threshold(0)  # automatic collection off
        with Runtime.build(settings_for()):
            assert gc.get_threshold()[0] == 0
    finally:
        sys.setswitchinterval(interval)
        gc.set_threshold(*thresholds)


def test_a_lease_lost_while_a_page_is_fetched_ahead_writes_nothing_more(
    settings_for: Callable[..., Settings], sandbox: RunningSandbox
) -> None:
    """Another worker takes the job while page 3 (from 0) is fetched ahead and page 2 is being
    written: page 2 is either rolled back by the fence or was committed before the theft,
    page 3 is never written by the old owner, and the new owner completes exactly."""
    with Runtime.build(settings_for(page_size=PAGE)) as rt:
        reference = queue_import(rt, sandbox, "ref", size=SIZE, seed=5)
        drain(rt)
        job = queue_import(rt, sandbox, "rosa", size=SIZE, seed=5)
        stolen = threading.Event()

        def steal_at_page_3(n: int) -> None:
            if n != 3:
                return
            # What a second worker's claim does once the lease looks expired to it.
            with rt.engine.begin() as conn:
                conn.execute(
                    update(contact_import_jobs)
                    .where(contact_import_jobs.c.id == job.id)
                    .values(locked_by="thief", attempts=contact_import_jobs.c.attempts + 1)
                )
            stolen.set()

        importer = importer_reading(rt, _fetch_hook(steal_at_page_3, rt.importer._sources))
        (claimed,) = rt.jobs.claim("w1", 1).jobs
        assert importer.run(claimed, ImportBudget()) is Outcome.LEASE_LOST
        assert stolen.is_set()
        after = rt.jobs.get(job.id)
        assert after.locked_by == "thief"
        assert after.pages_done in (2, 3)  # page 2 rolled back, or committed before the theft
        assert after.status is JobStatus.PROCESSING
        # Nothing half-written: the audit rows are exactly those of the committed pages.
        state = stored_state(rt.engine, after.user_id, after.id)
        assert state.audit_rows == after.processed_contacts == after.pages_done * PAGE
        assert state.audit_actions.get("created", 0) == after.created_contacts

        past = datetime.now(UTC) - timedelta(seconds=5)
        with rt.engine.begin() as conn:  # the thief dies; its lease runs out
            conn.execute(
                update(contact_import_jobs)
                .where(contact_import_jobs.c.id == job.id)
                .values(lease_expires_at=past)
            )
        drain(rt)
        done = rt.jobs.get(job.id)
        assert done.status is JobStatus.COMPLETED
        assert Counts.of(done) == Counts.of(rt.jobs.get(reference.id))
        assert_consistent(rt.engine, done, SIZE)
