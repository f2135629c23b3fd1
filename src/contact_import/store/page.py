"""Writing one page of an import: ONE transaction, owned here, read top to bottom in
``_write_whole``:

1. lock the user's contacts (one user's pages run one at a time),
2. read what the page already recorded and which of its contacts are unchanged at the
   provider since they were imported (their version, ``store.seen``: recorded ``skipped``
   right there, without reading anything else), then who owns the other contacts' match keys,
3. plan created / updated / skipped / failed (pure: ``domain.merge.plan_page_merge``),
4. checkpoint the job: cursor, counts and lease, fenced (a lost lease raises here and rolls
   the whole page back, the unchanged contacts' audit rows with it),
5. write contacts, keys, the other audit rows and the provider versions of what was merged,
6. on the last page, save the provider's sync token for the next import of this account
   and when its listing completed (continuous sync counts from there).

On Postgres, the page fetched ahead (``runner.listing``) is parsed by its thread only once
step 5's statement is sent (step 2's for a page handed over as listed): ``before_long_wait``,
called when this thread has built the statement's parameters and is about to wait.

The statement count is fixed per page, whatever its size. On Postgres: the lock, what the
page's contacts were before (one statement, ``store.seen``), the key owners and their
contacts, the checkpoint, all writes in one statement (``store.contacts.write_plan``). On
SQLite (in process) a few more: two reads and an insert for the past, one write per table.
No per-contact round trips.

A value the database refuses (a data error: see ``data_errors``) fails only its contact: the
page's transaction is rolled back and the page written again in a second one, its contacts in
SAVEPOINTs, a part that is refused halved until the refused contacts stand alone; they are
``failed`` with the database's reason, everything else is stored. That slow path runs only
after such an error; it keeps the same lock, checkpoint and lease fence in one transaction.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID, uuid4

from sqlalchemy import Connection, Engine

from contact_import.domain.contact import IncomingContact, looked_up_as_sent, normalize_contact
from contact_import.domain.merge import Action, PagePlan, plan_page_merge
from contact_import.store.contacts import (
    Incoming,
    do_nothing,
    load_matches,
    lock_user,
    match_keys_of,
    record_failed,
    write_plan,
)
from contact_import.store.data_errors import describe_data_error, is_data_error
from contact_import.store.db import is_postgres
from contact_import.store.grants import GrantStore
from contact_import.store.jobs import Checkpoint, Job, PageCounts, checkpoint
from contact_import.store.seen import seen_before

__all__ = ["Incoming", "Listed", "PageResult", "PageWrite", "write_page"]

# A contact of a page as the importer hands it over: normalized already, or still as the
# provider sent it, to be normalized here only if it is not unchanged at the provider.
Listed = Incoming | IncomingContact

log = logging.getLogger("contact_import.store")


@dataclass(frozen=True, slots=True)
class PageWrite:
    """One page of a claimed job to store, and where its listing goes next.

    ``next_cursor`` None: the last page (the job completes with it); ``sync_token``: what the
    provider handed out for the next incremental import, saved with the last page. A contact
    still as listed (``IncomingContact``) is normalized with ``default_region`` when needed.
    """

    job: Job
    contacts: Sequence[Listed]
    next_cursor: str | None
    provider_total: int | None = None
    sync_token: str | None = None
    default_region: str | None = None


@dataclass(frozen=True, slots=True)
class PageResult:
    counts: PageCounts
    cancel_requested: bool


@dataclass(frozen=True, slots=True)
class _Writer:
    """What every step of one page write needs besides the connection."""

    page: PageWrite
    grants: GrantStore
    lease_seconds: float
    new_id: Callable[[], UUID]
    webhooks: bool
    before_long_wait: Callable[[], None]


def write_page(
    engine: Engine,
    grants: GrantStore,
    page: PageWrite,
    *,
    lease_seconds: float,
    webhooks: bool,
    new_id: Callable[[], UUID] = uuid4,
    before_long_wait: Callable[[], None] | None = None,
) -> PageResult:
    """Store one page and advance its job, atomically; raises LeaseLost (and rolls back).

    A contact whose values the database refuses is ``failed`` alone (see the module doc).
    ``webhooks``: the last page also puts the job's ``import.completed`` in the outbox.
    ``before_long_wait`` is called right before the page's longest statement is sent on
    Postgres (its writes, or for a page handed over as listed the lookup that skips its
    unchanged contacts), its parameters built, perhaps more than once and perhaps not at
    all: another thread can run Python while this one waits (``runner.listing``), instead of
    during the short round trips and the Python before it. On SQLite it is called at once.
    """
    release = before_long_wait or do_nothing
    if not is_postgres(engine):
        # SQLite runs in this process: no round trips to keep short, and its statements
        # need the GIL between rows as much as a parse does. The other thread goes on now.
        release()
        release = do_nothing
    writer = _Writer(page, grants, lease_seconds, new_id, webhooks, release)
    try:
        with engine.begin() as conn:
            return _write_whole(conn, writer)
    except Exception as exc:
        if not is_data_error(exc):
            raise
        log.warning(
            "the database refused a value of this page (%s); isolating the contacts",
            describe_data_error(exc),
            extra={"job_id": str(page.job.id)},
        )
    with engine.begin() as conn:
        return _write_isolating(conn, writer)


def _write_whole(conn: Connection, w: _Writer) -> PageResult:
    """The page in one go: the fast path, and the order of every page write."""
    job = w.page.job
    lock_user(conn, job.user_id)
    plan = _plan(conn, w, w.page.contacts)
    counts = _counts(plan.counts())
    # Fence first: if the lease is gone, nothing below is written.
    cancel = _checkpoint(conn, w, counts)
    write_plan(conn, job.user_id, job.provider, job.id, plan, before_long_wait=w.before_long_wait)
    _save_sync_token(conn, w)
    return PageResult(counts, cancel)


def _write_isolating(conn: Connection, w: _Writer) -> PageResult:
    """The page again, in parts under SAVEPOINTs: only the refused contacts fail."""
    w.before_long_wait()  # the slow path, rare: nothing here is worth holding the page ahead
    job = w.page.job
    lock_user(conn, job.user_id)
    refused: dict[str, str] = {}
    actions: Counter[Action] = Counter()
    region = w.page.default_region
    contacts: list[Listed] = [
        normalize_contact(c, region) if isinstance(c, IncomingContact) else c
        for c in w.page.contacts
    ]  # the refused are named by their normalized ids (a stand-in for an unstorable one)
    _write_part(conn, w, contacts, refused, actions)
    record_failed(conn, job.user_id, job.provider, job.id, refused)
    actions[Action.FAILED] += len(refused)
    log.warning(
        "%d contacts of this page failed: the database refused their values",
        len(refused),
        extra={"job_id": str(job.id)},
    )
    counts = _counts(actions)
    # The fence comes last here: it is in the same transaction, so a lost lease still
    # rolls back every part written above.
    cancel = _checkpoint(conn, w, counts)
    _save_sync_token(conn, w)
    return PageResult(counts, cancel)


def _write_part(
    conn: Connection,
    w: _Writer,
    part: list[Listed],
    refused: dict[str, str],
    actions: Counter[Action],
) -> None:
    """Write ``part`` under a SAVEPOINT; if a value is refused, halve it and try each half.

    Halves go in page order, and each re-reads the key owners, so merges between contacts
    of the page come out as in the fast path, minus the refused contacts.
    """
    part = [c for c in part if c.provider_contact_id not in refused]  # a repeat of a refused one
    if not part:
        return
    try:
        with conn.begin_nested():
            plan = _plan(conn, w, part)
            write_plan(conn, w.page.job.user_id, w.page.job.provider, w.page.job.id, plan)
    except Exception as exc:
        if not is_data_error(exc):
            raise
        if len(part) == 1:
            refused[part[0].provider_contact_id] = "not stored: " + describe_data_error(exc)
            return
        half = len(part) // 2
        _write_part(conn, w, part[:half], refused, actions)
        _write_part(conn, w, part[half:], refused, actions)
        return
    actions.update(plan.counts())


def _plan(conn: Connection, w: _Writer, listed: Sequence[Listed]) -> PagePlan:
    """Read what the contacts match (ids this job recorded, those unchanged at the provider
    since they were imported, owners of the others' keys), then decide (pure) what to write.

    The unchanged ones are skipped without normalizing them (when they came as listed) or
    loading their keys or contacts: an unchanged book read again costs the page's lookup
    (``store.seen``) and the audit rows.
    """
    job, region = w.page.job, w.page.default_region
    contacts = [
        normalize_contact(c, region)
        if isinstance(c, IncomingContact) and not looked_up_as_sent(c)
        else c
        for c in listed
    ]
    # Handed over as listed, most are unchanged: skipped by this lookup, the page's longest.
    as_listed = any(isinstance(c, IncomingContact) for c in contacts)
    seen = seen_before(
        conn,
        job.id,
        job.user_id,
        job.provider,
        contacts,
        now=datetime.now(UTC),
        before_long_wait=w.before_long_wait if as_listed else do_nothing,
    )
    recorded, unchanged = seen.recorded, seen.unchanged
    done = recorded | unchanged  # neither matched nor planned again: no need to normalize
    planned = [
        normalize_contact(c, region)
        if isinstance(c, IncomingContact) and c.provider_contact_id not in done
        else c
        for c in contacts
    ]
    to_match = [
        c
        for c in planned
        if not isinstance(c, IncomingContact) and c.provider_contact_id not in done
    ]
    owners, existing = load_matches(conn, job.user_id, match_keys_of(job.provider, to_match))
    return plan_page_merge(
        planned,
        provider=job.provider,
        owners=owners,
        existing=existing,
        new_id=w.new_id,
        already_recorded=recorded,
        unchanged=unchanged,
    )


def _checkpoint(conn: Connection, w: _Writer, counts: PageCounts) -> bool:
    step = Checkpoint(counts, w.page.next_cursor, w.page.provider_total)
    return checkpoint(
        conn, w.page.job.lease, step, lease_seconds=w.lease_seconds, webhooks=w.webhooks
    )


def _save_sync_token(conn: Connection, w: _Writer) -> None:
    """After the last page, the next import of this account asks only for what changed, and
    continuous sync counts from now."""
    page = w.page
    if page.next_cursor is None and page.job.grant_id is not None:
        w.grants.record_listing(conn, page.job.grant_id, page.sync_token)


def _counts(actions: Mapping[Action, int]) -> PageCounts:
    return PageCounts(
        created=actions.get(Action.CREATED, 0),
        updated=actions.get(Action.UPDATED, 0),
        skipped=actions.get(Action.SKIPPED, 0),
        failed=actions.get(Action.FAILED, 0),
    )
