"""A page costs a fixed number of statements, whatever its size: no per-contact round trips."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import event, text

from contact_import.runner.worker import Worker
from contact_import.runtime import Runtime
from contact_import.sandbox.server import RunningSandbox
from contact_import.settings import Settings
from contact_import.store.notifications import NOTIFY_CHANNEL
from tests.helpers import assert_consistent, drain, queue_import

# The job's life around its pages: BEGIN (SQLite), its claim, lease renewals, its release or
# end, its grant read. How many there are depends on timing (a slow page renews the lease):
# not counted, so the count is the pages' own statements.
_AROUND_PAGES = re.compile(
    r"^(BEGIN|WITH picked|UPDATE contact_import_jobs SET (status|lease)|SELECT provider_grants)"
)


def _statements_per_page(rt: Runtime, sandbox: RunningSandbox, user: str, size: int) -> float:
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, sql: str, *_args: Any) -> None:
        if not _AROUND_PAGES.match(sql):
            statements.append(sql)

    job = queue_import(rt, sandbox, user, size=size, seed=11)
    event.listen(rt.engine, "before_cursor_execute", count)
    try:
        drain(rt, concurrency=1)
    finally:
        event.remove(rt.engine, "before_cursor_execute", count)
    done = rt.jobs.get(job.id)
    assert_consistent(rt.engine, done, size)
    return len(statements) / done.pages_done


@pytest.mark.slow
def test_statements_per_page_do_not_grow_with_the_page(
    settings_for: Callable[..., Settings], sandbox: RunningSandbox
) -> None:
    per_page = {}
    for page_size in (50, 1000):
        with Runtime.build(settings_for(page_size=page_size)) as rt:
            postgres = rt.engine.dialect.name == "postgresql"
            # Ten pages either way; the first import creates, the second only skips.
            user = f"sam-{page_size}"
            first = _statements_per_page(rt, sandbox, user, page_size * 10)
            again = _statements_per_page(rt, sandbox, user, page_size * 10)
            per_page[page_size] = (first, again)
    # 20x the contacts per page, at most one statement more per page (a write a small page
    # may not need, e.g. no contact to update): per-contact round trips would be 20x.
    assert per_page[1000][0] <= per_page[50][0] + 1, per_page
    assert per_page[1000][1] <= per_page[50][1] + 1, per_page
    # Postgres: lock, the page's past (recorded ids and unchanged versions, one read), key
    # owners, their contacts, checkpoint, all writes in one statement; plus the sync token
    # saved with the last page. SQLite: two reads of the past, five writes, no lock; on a
    # re-import the unchanged contacts' audit rows, and those of contacts with nothing to
    # import (no version is recorded for them), are two inserts there, one statement here.
    first_bound, again_bound = (6.1, 4.1) if postgres else (10.1, 5.1)
    assert per_page[1000][0] <= first_bound, per_page
    # A re-import of the unchanged book skips every contact on its version: no key owners,
    # no contacts read, nothing written but the audit rows and the checkpoint.
    assert per_page[1000][1] <= again_bound, per_page


def _listening(rt: Runtime) -> bool:
    """A session of this database waits on the jobs channel (the worker's LISTEN)."""
    with rt.engine.connect() as conn:
        listening = conn.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND query = :listen"
            ),
            {"listen": f"LISTEN {NOTIFY_CHANNEL}"},
        ).scalar_one()
    return bool(listening)


@pytest.mark.postgres
def test_worker_wakes_on_notify_long_before_its_poll_interval(
    pg_database_url: str, sandbox: RunningSandbox
) -> None:
    settings = Settings(
        contact_import_env="development",
        database_url=pg_database_url,
        google_people_api_url=sandbox.base_url,
    )
    with Runtime.build(settings) as rt:
        worker = Worker(
            rt.jobs,
            rt.importer,
            metrics=rt.metrics,
            concurrency=1,
            poll_seconds=60,
            listen_url=rt.listen_url,
        )
        thread = threading.Thread(target=worker.run)
        thread.start()
        try:
            # Idle and LISTENing (its next poll is 60 s away): only the NOTIFY can wake it now.
            deadline = time.monotonic() + 20
            while not _listening(rt):
                assert time.monotonic() < deadline, "the worker never LISTENed"
                time.sleep(0.05)
            job = queue_import(rt, sandbox, "nora", size=100)
            deadline = time.monotonic() + 20
            while rt.jobs.get(job.id).status.value != "completed":
                assert time.monotonic() < deadline, "the worker did not wake on NOTIFY"
                time.sleep(0.05)
        finally:
            worker.request_stop()
            thread.join(timeout=30)
        assert not thread.is_alive()
