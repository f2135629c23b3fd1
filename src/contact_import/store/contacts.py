"""The statements of a page write on the contact tables, each inside the caller's transaction.

``store.page`` calls them in order (lock, read, plan, write) and owns the transaction. Each is
set-based: one statement per table whatever the page size, so a page costs a fixed number of
round trips (``tests/integration/test_page_statements.py`` counts them).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql
from sqlalchemy import (
    ColumnElement,
    Connection,
    Table,
    Text,
    Uuid,
    bindparam,
    func,
    insert,
    select,
)
from sqlalchemy import update as sql_update
from sqlalchemy.dialects import postgresql
from sqlalchemy.types import TypeEngine

from contact_import.domain.contact import NormalizedContact, RejectedContact
from contact_import.domain.merge import (
    Action,
    ContactState,
    PagePlan,
    ProviderVersion,
    email_match_key,
    identity_key,
    phone_match_key,
)
from contact_import.store.db import dumps_json, is_postgres
from contact_import.store.json_params import json_param, json_rows, json_value, values_in
from contact_import.store.namespace import lock_seed, qualified, quoted_table
from contact_import.store.schema import (
    contact_match_keys,
    contacts,
    imported_contacts,
    provider_versions,
)

__all__ = [
    "Incoming",
    "load_matches",
    "lock_user",
    "match_keys_of",
    "record_failed",
    "write_plan",
]

Incoming = NormalizedContact | RejectedContact

_AUDIT_COLUMNS = (
    "import_job_id", "provider_contact_id", "contact_id", "action", "detail", "created_at",
)  # fmt: skip
_CONTACT_COLUMNS = (
    "id", "user_id", "display_name", "emails", "phones", "match_keys", "created_at", "updated_at",
)  # fmt: skip
_JSON_COLUMNS = frozenset({"emails", "phones", "match_keys"})


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


def write_plan(conn: Connection, user_id: str, provider: str, job_id: UUID, plan: PagePlan) -> None:
    """The plan's new contacts, merged contacts, new keys, provider versions and audit rows:
    one statement each."""
    now = datetime.now(UTC)
    created = [
        (s.id, user_id, s.display_name, s.emails, s.phones, s.keys, now, now) for s in plan.creates
    ]
    _bulk_insert(conn, contacts, _CONTACT_COLUMNS, created)
    _update_merged(conn, plan.updates, now)
    keys = [(user_id, key, contact_id) for key, contact_id in plan.new_keys.items()]
    _bulk_insert(conn, contact_match_keys, ("user_id", "key", "contact_id"), keys)
    audit = [
        (job_id, o.provider_contact_id, o.contact_id, o.action.value, o.detail, now)
        for o in plan.outcomes
    ]
    _bulk_insert(conn, imported_contacts, _AUDIT_COLUMNS, audit)
    _record_versions(conn, user_id, provider, plan.versions)


def _record_versions(
    conn: Connection, user_id: str, provider: str, versions: Sequence[ProviderVersion]
) -> None:
    """Upsert the versions in one statement: one JSON parameter on Postgres; on SQLite (in
    process, no round trips to save) one executemany of plain tuples, the cheapest there."""
    if not versions:
        return
    if not is_postgres(conn):
        tuples = [
            (user_id, provider, x.provider_contact_id, x.contact_id.hex, x.version)
            for x in versions
        ]
        conn.exec_driver_sql(
            _SQLITE_UPSERT.format(table=quoted_table(conn, provider_versions.name)), tuples
        )
        return
    rows = [(x.provider_contact_id, x.contact_id, x.version) for x in versions]
    params = {"user_id": user_id, "provider": provider, "rows": json_value(rows)}
    conn.execute(_versions_upsert(), params)


@lru_cache(maxsize=1)
def _versions_upsert() -> Any:
    """Built once; executed with ``user_id``, ``provider`` and ``rows`` (a JSON list of
    [provider id, contact id, version])."""
    v = provider_versions.c
    columns: list[tuple[str, TypeEngine[Any]]] = [
        ("pcid", Text()), ("contact_id", Uuid()), ("version", Text()),
    ]  # fmt: skip
    rows = json_rows(json_param("rows"), columns).subquery()
    source = select(
        bindparam("user_id", type_=Text()), bindparam("provider", type_=Text()), *rows.c
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


def record_failed(conn: Connection, job_id: UUID, reasons: Mapping[str, str]) -> None:
    """Audit rows for contacts that failed with a reason: provider id → reason."""
    now = datetime.now(UTC)
    rows = [
        (job_id, pcid, None, Action.FAILED.value, reason, now) for pcid, reason in reasons.items()
    ]
    _bulk_insert(conn, imported_contacts, _AUDIT_COLUMNS, rows)


def _in(column: ColumnElement[Any], values: Sequence[Any], conn: Connection) -> ColumnElement[bool]:
    # One JSON parameter on Postgres instead of thousands of placeholders (``json_params``).
    if is_postgres(conn):
        return column.in_(values_in(values, column.type))
    return column.in_(values)


def _bulk_insert(
    conn: Connection, table: Table, columns: Sequence[str], rows: list[tuple[Any, ...]]
) -> None:
    """Insert many rows in one statement: COPY on Postgres, a multi-row INSERT on SQLite.

    COPY runs on the same connection, so it is part of the page's transaction. It is
    spelled by hand, so it names the deployment's schema itself (``qualified``).
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
                qualified(conn, table.name), sql.SQL(", ").join(map(sql.Identifier, columns))
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
