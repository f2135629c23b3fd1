"""The statements of a page write on the contact tables, each inside the caller's transaction.

``store.page`` calls them in order (lock, read, plan, write) and owns the transaction. Each is
set-based: one statement per table whatever the page size, so a page costs a fixed number of
round trips (``tests/integration/test_page_statements.py`` counts them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from uuid import UUID

from sqlalchemy import (
    ColumnElement,
    Connection,
    Table,
    Text,
    Uuid,
    bindparam,
    func,
    insert,
    literal_column,
    select,
)
from sqlalchemy import update as sql_update
from sqlalchemy.dialects import postgresql
from sqlalchemy.types import TypeEngine

from contact_import.domain.contact import NormalizedContact, RejectedContact
from contact_import.domain.merge import (
    Action,
    ContactOutcome,
    ContactState,
    PagePlan,
    ProviderVersion,
    email_match_key,
    identity_key,
    phone_match_key,
)
from contact_import.store.db import is_postgres
from contact_import.store.json_params import json_param, json_rows, json_value, values_in
from contact_import.store.namespace import lock_seed, quoted_table
from contact_import.store.schema import (
    UTCDateTime,
    contact_match_keys,
    contacts,
    imported_contacts,
    provider_versions,
)

__all__ = [
    "AUDIT_COLUMNS",
    "Incoming",
    "do_nothing",
    "insert_sqlite",
    "load_matches",
    "lock_user",
    "match_keys_of",
    "record_failed",
    "write_plan",
]

Incoming = NormalizedContact | RejectedContact

AUDIT_COLUMNS = (
    "import_job_id", "provider_contact_id", "contact_id", "action", "detail", "created_at",
)  # fmt: skip
_CONTACT_COLUMNS = (
    "id", "user_id", "display_name", "emails", "phones", "match_keys", "created_at", "updated_at",
)  # fmt: skip


def lock_user(conn: Connection, user_id: str) -> None:
    """Serialize concurrent pages of one user (Postgres); SQLite's write lock already does.

    Two imports of the same user on two workers would otherwise both read "no owner" for one
    email and both create a contact. The unique (user_id, key) index stays as the backstop: a
    violation rolls the page back and the job retries it. The key is per schema
    (``lock_seed``): a deployment in another schema does not wait for this one.
    """
    if is_postgres(conn):
        key = func.hashtextextended(user_id, lock_seed(conn))
        conn.execute(select(func.pg_advisory_xact_lock(key)))


def match_keys_of(provider: str, incoming: Iterable[Incoming]) -> list[str]:
    """Every key the contacts could match on: identity, email and phone keys (sorted).

    A contact deleted at the provider or with nothing to import matches nothing: none of its.
    """
    keys: set[str] = set()
    for contact in incoming:
        if isinstance(contact, RejectedContact) or contact.deleted or not contact.importable:
            continue
        keys.add(identity_key(provider, contact.provider_contact_id))
        keys.update(email_match_key(e.key) for e in contact.emails if e.key)
        keys.update(phone_match_key(p.key) for p in contact.phones if p.key)
    return sorted(keys)


def load_matches(
    conn: Connection, user_id: str, keys: list[str]
) -> tuple[dict[str, UUID], dict[UUID, ContactState]]:
    """Owners of the keys, then each owning contact once (not once per key)."""
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


def do_nothing() -> None:
    """The ``before_long_wait`` of a statement nobody waits beside."""


def write_plan(
    conn: Connection,
    user_id: str,
    provider: str,
    job_id: UUID,
    plan: PagePlan,
    *,
    before_long_wait: Callable[[], None] = do_nothing,
) -> None:
    """The plan's new contacts, merged contacts, new keys, audit rows and provider versions.

    On Postgres ONE statement (``_page_writes``): each table's rows are one JSON parameter,
    encoded by orjson in C, and written by a data-modifying CTE; one round trip whatever the
    page holds. ``before_long_wait`` is called once its parameters are built, right before it
    is sent (``store.page``). On SQLite (in process: no round trips to save) one executemany
    per table.
    """
    now = datetime.now(UTC)
    if is_postgres(conn):
        if plan.creates or plan.updates or plan.new_keys or plan.outcomes or plan.versions:
            params = _page_write_params(user_id, provider, job_id, plan, now)
            before_long_wait()
            conn.execute(_page_writes(), params)
        return
    created = [
        (s.id, user_id, s.display_name, s.emails, s.phones, s.keys, now, now) for s in plan.creates
    ]
    insert_sqlite(conn, contacts, _CONTACT_COLUMNS, created)
    _update_merged(conn, plan.updates, now)
    keys = [(user_id, key, contact_id) for key, contact_id in plan.new_keys.items()]
    insert_sqlite(conn, contact_match_keys, ("user_id", "key", "contact_id"), keys)
    audit = [
        (job_id, o.provider_contact_id, o.contact_id, o.action.value, o.detail, now)
        for o in plan.outcomes
    ]
    insert_sqlite(conn, imported_contacts, AUDIT_COLUMNS, audit)
    _record_versions_sqlite(conn, user_id, provider, plan.versions)


def _page_write_params(
    user_id: str, provider: str, job_id: UUID, plan: PagePlan, now: datetime
) -> dict[str, Any]:
    """The values of ``_page_writes``: one JSON text per table (lists, in column order)."""
    return {
        "page_user": user_id,
        "page_provider": provider,
        "page_job": job_id,
        "page_now": now,
        "created": _states_json(plan.creates),
        "merged": _states_json(plan.updates),
        "keys": json_value(list(plan.new_keys.items())),
        "audit": json_value(
            [(o.provider_contact_id, o.contact_id, o.action.value, o.detail) for o in plan.outcomes]
        ),
        "versions": json_value(
            [(x.provider_contact_id, x.contact_id, x.version) for x in plan.versions]
        ),
    }


def _states_json(states: Sequence[ContactState]) -> str:
    return json_value([(s.id, s.display_name, s.emails, s.phones, s.keys) for s in states])


_JSONB = postgresql.JSONB()
_STATE_COLUMNS: list[tuple[str, TypeEngine[Any]]] = [
    ("id", Uuid()), ("display_name", Text()),
    ("emails", _JSONB), ("phones", _JSONB), ("match_keys", _JSONB),
]  # fmt: skip


@lru_cache(maxsize=1)
def _page_writes() -> Any:
    """Every write of a page as one statement, built once: five data-modifying CTEs (new
    contacts, merged contacts, new keys, audit rows, the versions upsert) under a SELECT.

    Postgres runs each CTE once, to completion, on the statement's snapshot, and checks the
    foreign keys at the end of the statement: a new key may name a contact inserted beside it.
    Executed with ``page_user``, ``page_provider``, ``page_job``, ``page_now`` and one JSON list
    per table (``_page_write_params``). The names are no column's: SQLAlchemy would take a
    parameter named as a column of the UPDATE's table for a value to SET.
    """
    user_id = bindparam("page_user", type_=Text())
    now = bindparam("page_now", type_=UTCDateTime())
    new = json_rows(json_param("created"), _STATE_COLUMNS).subquery()
    c = contacts.c
    insert_contacts = insert(contacts).from_select(
        list(_CONTACT_COLUMNS),
        select(new.c.id, user_id, new.c.display_name, new.c.emails, new.c.phones,
               new.c.match_keys, now, now),
    )  # fmt: skip
    merged = json_rows(json_param("merged"), _STATE_COLUMNS).subquery()
    update_merged = (
        sql_update(contacts)
        .where(c.id == merged.c.id)
        .values(
            display_name=merged.c.display_name,
            emails=merged.c.emails,
            phones=merged.c.phones,
            match_keys=merged.c.match_keys,
            updated_at=now,
        )
    )
    keys = json_rows(json_param("keys"), [("key", Text()), ("contact_id", Uuid())]).subquery()
    insert_keys = insert(contact_match_keys).from_select(
        ["user_id", "key", "contact_id"], select(user_id, keys.c.key, keys.c.contact_id)
    )
    audit_columns: list[tuple[str, TypeEngine[Any]]] = [
        ("pcid", Text()), ("contact_id", Uuid()), ("action", Text()), ("detail", Text()),
    ]  # fmt: skip
    audit = json_rows(json_param("audit"), audit_columns).subquery()
    insert_audit = insert(imported_contacts).from_select(
        list(AUDIT_COLUMNS),
        select(bindparam("page_job", type_=Uuid()), *audit.c, now),
    )
    writes = [insert_contacts, update_merged, insert_keys, insert_audit, _versions_upsert()]
    names = ("created", "merged", "new_keys", "audited", "versioned")
    return select(literal_column("1")).add_cte(
        *(write.cte(f"{name}_rows") for write, name in zip(writes, names, strict=True))
    )


def _record_versions_sqlite(
    conn: Connection, user_id: str, provider: str, versions: Sequence[ProviderVersion]
) -> None:
    """Upsert the versions in one executemany of plain tuples, the cheapest on SQLite."""
    if not versions:
        return
    tuples = [
        (user_id, provider, x.provider_contact_id, x.contact_id.hex, x.version) for x in versions
    ]
    conn.exec_driver_sql(
        _SQLITE_UPSERT.format(table=quoted_table(conn, provider_versions.name)), tuples
    )


def _versions_upsert() -> Any:
    """The versions upsert of ``_page_writes`` (its ``versions``: a JSON list of
    [provider id, contact id, version])."""
    v = provider_versions.c
    columns: list[tuple[str, TypeEngine[Any]]] = [
        ("pcid", Text()), ("contact_id", Uuid()), ("version", Text()),
    ]  # fmt: skip
    rows = json_rows(json_param("versions"), columns).subquery()
    source = select(
        bindparam("page_user", type_=Text()), bindparam("page_provider", type_=Text()), *rows.c
    )
    key = [v.user_id, v.provider, v.provider_contact_id]
    upsert = postgresql.insert(provider_versions).from_select(
        [*key, v.contact_id, v.version], source
    )
    new = upsert.excluded
    return upsert.on_conflict_do_update(
        index_elements=key, set_={"contact_id": new.contact_id, "version": new.version}
    )


# Uuid on SQLite is its 32 hex digits (SQLAlchemy's storage), as contact_match_keys holds it.
_SQLITE_UPSERT = (
    "INSERT INTO {table} (user_id, provider, provider_contact_id, contact_id, version) "
    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (user_id, provider, provider_contact_id) "
    "DO UPDATE SET contact_id = excluded.contact_id, version = excluded.version"
)


def _update_merged(conn: Connection, merged: Sequence[ContactState], now: datetime) -> None:
    """Every merged contact in one executemany UPDATE."""
    if not merged:
        return
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
        [_update_row(s, now) for s in merged],
    )


def record_failed(
    conn: Connection, user_id: str, provider: str, job_id: UUID, reasons: Mapping[str, str]
) -> None:
    """Audit rows for contacts that failed with a reason: provider id → reason."""
    failed = [ContactOutcome(pcid, Action.FAILED, None, reason) for pcid, reason in reasons.items()]
    if failed:
        write_plan(conn, user_id, provider, job_id, PagePlan(outcomes=failed))


def _in(column: ColumnElement[Any], values: Sequence[Any], conn: Connection) -> ColumnElement[bool]:
    # One JSON parameter on Postgres instead of thousands of placeholders (``json_params``).
    if is_postgres(conn):
        return column.in_(values_in(values, column.type))
    return column.in_(values)


def insert_sqlite(
    conn: Connection, table: Table, columns: Sequence[str], rows: list[tuple[Any, ...]]
) -> None:
    """Many rows in one executemany INSERT (SQLite)."""
    if rows:
        conn.execute(insert(table), [dict(zip(columns, row, strict=True)) for row in rows])


def _update_row(state: ContactState, now: datetime) -> dict[str, Any]:
    return {
        "b_id": state.id,
        "display_name": state.display_name,
        "emails": state.emails,
        "phones": state.phones,
        "match_keys": state.keys,
        "updated_at": now,
    }
