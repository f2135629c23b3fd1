"""Writing one page of an import: match, merge, upsert, audit and checkpoint in ONE transaction.

The statement count is fixed per page (lock, two reads, up to four writes, the checkpoint),
whatever the page size: no per-contact round trips.

A value the database refuses (a data error: see ``data_errors``) fails only its contact: the
page's transaction is rolled back and the page written again in a second one, its contacts in
SAVEPOINTs, a part that is refused halved until the refused contacts stand alone; they are
``failed`` with the database's reason, everything else is stored. That slow path runs only
after such an error; it keeps the same lock, checkpoint and lease fence in one transaction.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import psycopg
from psycopg import sql
from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Table,
    any_,
    bindparam,
    func,
    insert,
    select,
)
from sqlalchemy import update as sql_update
from sqlalchemy.dialects.postgresql import ARRAY

from contact_import.domain.contact import NormalizedContact, RejectedContact
from contact_import.domain.merge import (
    Action,
    ContactState,
    PagePlan,
    email_match_key,
    identity_key,
    phone_match_key,
    plan_page_merge,
)
from contact_import.store.data_errors import describe_data_error, is_data_error
from contact_import.store.db import dumps_json, is_postgres
from contact_import.store.grants import GrantStore
from contact_import.store.jobs import Lease, PageCounts, checkpoint
from contact_import.store.schema import contact_match_keys, contacts, imported_contacts

__all__ = ["PageResult", "apply_page"]

log = logging.getLogger("contact_import.store")

Incoming = NormalizedContact | RejectedContact


@dataclass(frozen=True, slots=True)
class PageResult:
    counts: PageCounts
    cancel_requested: bool


@dataclass(frozen=True, slots=True)
class _Page:
    """One page to store, and what the checkpoint after it needs."""

    lease: Lease
    user_id: str
    provider: str
    incoming: Sequence[Incoming]
    next_cursor: str | None
    provider_total: int | None
    lease_seconds: float
    new_id: Callable[[], UUID]
    sync_token: str | None
    grants: GrantStore | None
    grant_id: UUID | None


def apply_page(
    engine: Engine,
    lease: Lease,
    *,
    user_id: str,
    provider: str,
    incoming: Sequence[Incoming],
    next_cursor: str | None,
    provider_total: int | None,
    lease_seconds: float,
    new_id: Callable[[], UUID] = uuid4,
    sync_token: str | None = None,
    grants: GrantStore | None = None,
    grant_id: UUID | None = None,
) -> PageResult:
    """Store one page and advance the job, atomically; raises LeaseLost (and rolls back).

    A contact whose values the database refuses is ``failed`` alone (see the module doc).
    """
    page = _Page(
        lease, user_id, provider, incoming, next_cursor, provider_total, lease_seconds,
        new_id, sync_token, grants, grant_id,
    )  # fmt: skip
    try:
        with engine.begin() as conn:
            return _write_page(conn, page)
    except Exception as exc:
        if not is_data_error(exc):
            raise
        log.warning(
            "the database refused a value of this page (%s); isolating the contacts",
            describe_data_error(exc),
            extra={"job_id": str(lease.job_id)},
        )
    with engine.begin() as conn:
        return _write_page_isolating(conn, page)


def _write_page(conn: Connection, page: _Page) -> PageResult:
    _lock_user(conn, page.user_id)
    plan = _plan(conn, page, page.incoming)
    counts = _counts(plan.counts())
    # Fence first: if the lease is gone, nothing below is written.
    cancel = _checkpoint(conn, page, counts)
    _write_plan(conn, page.user_id, page.lease.job_id, plan)
    return PageResult(counts, cancel)


def _write_page_isolating(conn: Connection, page: _Page) -> PageResult:
    """The page again, in parts under SAVEPOINTs: only the refused contacts fail."""
    _lock_user(conn, page.user_id)
    refused: dict[str, str] = {}
    actions: Counter[Action] = Counter()
    _write_part(conn, page, list(page.incoming), refused, actions)
    now = datetime.now(UTC)
    _bulk_insert(
        conn,
        imported_contacts,
        ("import_job_id", "provider_contact_id", "contact_id", "action", "detail", "created_at"),
        [
            (page.lease.job_id, pcid, None, Action.FAILED.value, reason, now)
            for pcid, reason in refused.items()
        ],
    )
    actions[Action.FAILED] += len(refused)
    log.warning(
        "%d contacts of this page failed: the database refused their values",
        len(refused),
        extra={"job_id": str(page.lease.job_id)},
    )
    counts = _counts(actions)
    # The fence comes last here: it is in the same transaction, so a lost lease still
    # rolls back every part written above.
    return PageResult(counts, _checkpoint(conn, page, counts))


def _write_part(
    conn: Connection,
    page: _Page,
    part: list[Incoming],
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
            plan = _plan(conn, page, part)
            _write_plan(conn, page.user_id, page.lease.job_id, plan)
    except Exception as exc:
        if not is_data_error(exc):
            raise
        if len(part) == 1:
            refused[part[0].provider_contact_id] = "not stored: " + describe_data_error(exc)
            return
        half = len(part) // 2
        _write_part(conn, page, part[:half], refused, actions)
        _write_part(conn, page, part[half:], refused, actions)
        return
    actions.update(plan.counts())


def _plan(conn: Connection, page: _Page, incoming: Sequence[Incoming]) -> PagePlan:
    """Read what the contacts of ``incoming`` match, then decide (pure) what to write."""
    recorded = _recorded_ids(conn, page.lease.job_id, [c.provider_contact_id for c in incoming])
    owners, existing = _load_matches(conn, page.user_id, _candidate_keys(page.provider, incoming))
    return plan_page_merge(
        incoming,
        provider=page.provider,
        owners=owners,
        existing=existing,
        new_id=page.new_id,
        already_recorded=recorded,
    )


def _checkpoint(conn: Connection, page: _Page, counts: PageCounts) -> bool:
    cancel = checkpoint(
        conn,
        page.lease,
        counts,
        next_cursor=page.next_cursor,
        provider_total=page.provider_total,
        lease_seconds=page.lease_seconds,
    )
    grants, grant_id = page.grants, page.grant_id
    if page.next_cursor is None and page.sync_token and grants is not None and grant_id:
        # The next import of this account asks only for what changed after this listing.
        grants.set_sync_token(conn, grant_id, page.sync_token)
    return cancel


def _lock_user(conn: Connection, user_id: str) -> None:
    """Serialize concurrent pages of one user (Postgres); SQLite's write lock already does.

    Two imports of the same user on two workers would otherwise both read "no owner" for one
    email and both create a contact. The unique (user_id, key) index stays as the backstop: a
    violation rolls the page back and the job retries it.
    """
    if is_postgres(conn):
        conn.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(user_id, 0))))


def _in(column: ColumnElement[Any], values: Sequence[Any], conn: Connection) -> ColumnElement[bool]:
    # One array parameter on Postgres instead of thousands of placeholders.
    if is_postgres(conn):
        return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))
    return column.in_(values)


def _recorded_ids(conn: Connection, job_id: UUID, pcids: list[str]) -> set[str]:
    """Provider ids this job already recorded: a page seen twice is not counted twice."""
    if not pcids:
        return set()
    col = imported_contacts.c.provider_contact_id
    stmt = select(col).where(imported_contacts.c.import_job_id == job_id, _in(col, pcids, conn))
    return set(conn.execute(stmt).scalars())


def _candidate_keys(provider: str, incoming: Iterable[Incoming]) -> list[str]:
    keys: set[str] = set()
    for contact in incoming:
        if isinstance(contact, RejectedContact):
            continue
        keys.add(identity_key(provider, contact.provider_contact_id))
        keys.update(email_match_key(e.key) for e in contact.emails if e.key)
        keys.update(phone_match_key(p.key) for p in contact.phones if p.key)
    return sorted(keys)


def _load_matches(
    conn: Connection, user_id: str, keys: list[str]
) -> tuple[dict[str, UUID], dict[UUID, ContactState]]:
    """Owners of the page's keys, then each owning contact once (not once per key)."""
    if not keys:
        return {}, {}
    k, c = contact_match_keys.c, contacts.c
    owners: dict[str, UUID] = dict(
        conn.execute(
            select(k.key, k.contact_id).where(k.user_id == user_id, _in(k.key, keys, conn))
        ).all()
    )
    if not owners:
        return owners, {}
    stmt = select(c.id, c.display_name, c.emails, c.phones, c.match_keys).where(
        _in(c.id, sorted(set(owners.values())), conn)
    )
    existing = {
        row.id: ContactState(row.id, row.display_name, row.emails, row.phones, row.match_keys)
        for row in conn.execute(stmt)
    }
    return owners, existing


def _counts(counts: Counter[Action]) -> PageCounts:
    return PageCounts(
        created=counts[Action.CREATED],
        updated=counts[Action.UPDATED],
        skipped=counts[Action.SKIPPED],
        failed=counts[Action.FAILED],
    )


def _write_plan(conn: Connection, user_id: str, job_id: UUID, plan: PagePlan) -> None:
    now = datetime.now(UTC)
    _bulk_insert(
        conn,
        contacts,
        ("id", "user_id", "display_name", "emails", "phones", "match_keys", "created_at",
         "updated_at"),
        [
            (s.id, user_id, s.display_name, s.emails, s.phones, s.keys, now, now)
            for s in plan.creates
        ],
    )  # fmt: skip
    if plan.updates:
        conn.execute(
            sql_update(contacts)
            .where(contacts.c.id == bindparam("b_id"))
            .values(
                display_name=bindparam("display_name"),
                emails=bindparam("emails"),
                phones=bindparam("phones"),
                match_keys=bindparam("match_keys"),
                updated_at=bindparam("updated_at"),
            ),
            [_update_row(s, now) for s in plan.updates],
        )
    _bulk_insert(
        conn,
        contact_match_keys,
        ("user_id", "key", "contact_id"),
        [(user_id, key, contact_id) for key, contact_id in plan.new_keys.items()],
    )
    _bulk_insert(
        conn,
        imported_contacts,
        ("import_job_id", "provider_contact_id", "contact_id", "action", "detail", "created_at"),
        [
            (job_id, o.provider_contact_id, o.contact_id, o.action.value, o.detail, now)
            for o in plan.outcomes
        ],
    )


_JSON_COLUMNS = frozenset({"emails", "phones", "match_keys"})


def _bulk_insert(
    conn: Connection, table: Table, columns: Sequence[str], rows: list[tuple[Any, ...]]
) -> None:
    """Insert many rows in one statement: COPY on Postgres, a multi-row INSERT on SQLite.

    COPY runs on the same connection, so it is part of the page's transaction.
    """
    if not rows:
        return
    if not is_postgres(conn):
        conn.execute(insert(table), [dict(zip(columns, row, strict=True)) for row in rows])
        return
    json_at = [i for i, name in enumerate(columns) if name in _JSON_COLUMNS]
    raw = conn.connection.driver_connection
    assert isinstance(raw, psycopg.Connection)
    with (
        raw.cursor() as cursor,
        cursor.copy(
            sql.SQL("COPY {} ({}) FROM STDIN").format(
                sql.Identifier(table.name), sql.SQL(", ").join(map(sql.Identifier, columns))
            )
        ) as copy,
    ):
        for row in rows:
            copy.write_row(
                [dumps_json(v) if i in json_at else v for i, v in enumerate(row)]
                if json_at
                else row
            )


def _update_row(state: ContactState, now: datetime) -> dict[str, Any]:
    return {
        "b_id": state.id,
        "display_name": state.display_name,
        "emails": state.emails,
        "phones": state.phones,
        "match_keys": state.keys,
        "updated_at": now,
    }
