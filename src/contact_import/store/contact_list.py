"""Reading a user's contacts: page by page (keyset pagination on (created_at, id)), or counted."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from sqlalchemy import Engine, and_, func, or_, select, tuple_

from contact_import.errors import RequestRejected
from contact_import.store.schema import contacts

__all__ = ["ContactRow", "count_contacts", "list_contacts"]


@dataclass(frozen=True, slots=True)
class ContactRow:
    id: UUID
    display_name: str
    emails: list[str]
    phones: list[str]
    created_at: datetime
    updated_at: datetime


def _encode(created_at: datetime, contact_id: UUID) -> str:
    raw = json.dumps([created_at.isoformat(), str(contact_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str) -> tuple[datetime, UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        when, ident = json.loads(raw)
        after = datetime.fromisoformat(when)
        # We hand out aware UTC times; a naive one (or one that cannot be UTC) is not ours.
        if after.tzinfo is None:
            raise ValueError("naive timestamp")
        return after.astimezone(UTC), UUID(ident)
    except (binascii.Error, ValueError, TypeError, OverflowError, UnicodeError):
        raise RequestRejected("cursor is not one this API handed out") from None


def list_contacts(
    engine: Engine, user_id: str, *, limit: int, cursor: str | None = None
) -> tuple[list[ContactRow], str | None]:
    """Up to ``limit`` contacts, oldest first, after ``cursor``; and the next page's cursor."""
    c = contacts.c
    stmt = (
        select(c.id, c.display_name, c.emails, c.phones, c.created_at, c.updated_at)
        .where(c.user_id == user_id)
        .order_by(c.created_at, c.id)
        .limit(limit + 1)
    )
    if cursor is not None:
        after, after_id = _decode(cursor)
        stmt = stmt.where(
            or_(c.created_at > after, and_(c.created_at == after, c.id > after_id))
            if engine.dialect.name == "sqlite"
            else tuple_(c.created_at, c.id) > tuple_(after, after_id)
        )
    with engine.connect() as conn:
        rows = [ContactRow(*row) for row in conn.execute(stmt)]
    if len(rows) <= limit:
        return rows, None
    last = rows[limit - 1]
    return rows[:limit], _encode(last.created_at, last.id)


def count_contacts(engine: Engine, user_id: str) -> int:
    """How many contacts the user has."""
    stmt = select(func.count()).select_from(contacts).where(contacts.c.user_id == user_id)
    with engine.connect() as conn:
        return int(conn.execute(stmt).scalar_one())
