"""What a page's contacts were before this page: recorded by this job already, or unchanged at
the provider since they were last imported; the unchanged ones are recorded ``skipped`` here
and then. Read first in every page write (``store.page``).

- **Recorded**: provider ids with an audit row of this job (a page listed twice, or a listing
  restarted from the top): not counted twice.
- **Unchanged**: the provider version (Google ``etag``, Graph ``changeKey``) is the one
  recorded in ``provider_versions`` when the contact was last merged, into a contact that still
  owns its identity key (a contact deleted here, or merged into another, no longer does). Its
  audit row (``skipped``, "unchanged at the provider", into that contact) is written by the
  same statement: the contact never comes back to Python. The first copy of a contact
  repeated in the page decides.

On Postgres that is ONE statement: each provider id of the page, sent as one JSON parameter,
is two primary-key probes (LATERAL joins with a LIMIT, which the planner cannot flatten into a
scan: with ``= ANY`` it scanned all the job's audit rows, or all the user's versions, on every
page, and a long import grew quadratic in its length), and an ``INSERT … SELECT`` of the audit
rows from what the probes found. On SQLite, in process, two plain reads and an insert.

The audit rows are written before the page's checkpoint (the lease fence): that is safe because
they are in the page's transaction, which a lost lease rolls back whole.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any
from uuid import UUID

from sqlalchemy import (
    Connection,
    Select,
    Text,
    Uuid,
    and_,
    bindparam,
    insert,
    literal,
    select,
    true,
)

from contact_import.domain.contact import IncomingContact, RejectedContact
from contact_import.domain.merge import UNCHANGED_DETAIL, Action, identity_key
from contact_import.store.contacts import AUDIT_COLUMNS, Incoming, do_nothing, insert_sqlite
from contact_import.store.db import is_postgres
from contact_import.store.json_params import json_param, json_rows, json_value
from contact_import.store.schema import (
    UTCDateTime,
    contact_match_keys,
    imported_contacts,
    provider_versions,
)

__all__ = ["Seen", "seen_before"]


@dataclass(frozen=True, slots=True)
class Seen:
    """``recorded``: ids this job recorded before; ``unchanged``: ids recorded ``skipped`` now."""

    recorded: set[str] = field(default_factory=set)
    unchanged: set[str] = field(default_factory=set)


def seen_before(
    conn: Connection,
    job_id: UUID,
    user_id: str,
    provider: str,
    contacts: Sequence[Incoming | IncomingContact],
    *,
    now: datetime,
    before_long_wait: Callable[[], None] = do_nothing,
) -> Seen:
    """The page's recorded and unchanged contacts, the unchanged ones recorded ``skipped`` with
    ``now`` (see the module doc). An ``IncomingContact`` (not normalized yet) must pass
    ``domain.contact.looked_up_as_sent``. On Postgres ``before_long_wait`` is called once the
    statement's parameters are built, right before it is sent (``store.page``)."""
    versions: dict[str, str | None] = {}  # provider id → the version to compare, in page order
    for contact in contacts:
        pcid = contact.provider_contact_id
        if isinstance(contact, RejectedContact) or contact.deleted:
            versions.setdefault(pcid, None)
        else:
            versions.setdefault(pcid, contact.version)
    if not versions:
        return Seen()
    if not is_postgres(conn):
        return _seen_sqlite(conn, job_id, user_id, provider, versions, now=now)
    seen = Seen()
    params = {
        "seen_job": job_id,
        "seen_user": user_id,
        "seen_now": now,
        "rows": json_value(list(versions.items())),
    }
    before_long_wait()
    for pcid, recorded in conn.execute(_one_statement(provider), params):
        (seen.recorded if recorded else seen.unchanged).add(pcid)
    return seen


def _owned_versions(user_id: Any, provider: str) -> tuple[Any, Any]:
    """The versions of this user and provider whose contact still owns their identity key."""
    v, k = provider_versions.c, contact_match_keys.c
    identity = literal(identity_key(provider, ""), Text) + v.provider_contact_id
    owned = and_(k.user_id == v.user_id, k.key == identity, k.contact_id == v.contact_id)
    return owned, and_(v.user_id == user_id, v.provider == provider)


@lru_cache(maxsize=16)
def _one_statement(provider: str) -> Select[Any]:
    """Built once per provider; executed with ``seen_job``, ``seen_user``, ``seen_now`` and
    ``rows`` (a JSON list of [provider id, version or null]). Answers (provider id,
    recorded before) for every contact recorded before or now."""
    v, ic = provider_versions.c, imported_contacts.c
    columns = [("pcid", Text()), ("version", Text())]
    page = json_rows(json_param("rows"), columns).subquery()
    recorded = (
        select(literal(True).label("found"))
        .where(
            ic.import_job_id == bindparam("seen_job", type_=Uuid()),
            ic.provider_contact_id == page.c.pcid,
        )
        .limit(1)
        .lateral()
    )
    owned, mine = _owned_versions(bindparam("seen_user", type_=Text()), provider)
    unchanged = (
        select(v.contact_id)
        .join(contact_match_keys, owned)
        .where(mine, v.provider_contact_id == page.c.pcid, v.version == page.c.version)
        .limit(1)
        .lateral()
    )
    found = (
        select(page.c.pcid, recorded.c.found.is_not(None).label("recorded"), unchanged.c.contact_id)
        .select_from(page)
        .outerjoin(recorded, true())
        .outerjoin(unchanged, true())
        .where(recorded.c.found.is_not(None) | unchanged.c.contact_id.is_not(None))
        .cte("found")  # read twice below: Postgres computes it once
    )
    skipped = select(
        bindparam("seen_job", type_=Uuid()),
        found.c.pcid,
        found.c.contact_id,
        literal(Action.SKIPPED.value, Text),
        literal(UNCHANGED_DETAIL, Text),
        bindparam("seen_now", type_=UTCDateTime()),
    ).where(~found.c.recorded)
    audit = insert(imported_contacts).from_select(list(AUDIT_COLUMNS), skipped)
    return select(found.c.pcid, found.c.recorded).add_cte(audit.cte("skipped_rows"))


def _seen_sqlite(
    conn: Connection,
    job_id: UUID,
    user_id: str,
    provider: str,
    versions: dict[str, str | None],
    *,
    now: datetime,
) -> Seen:
    ic, v = imported_contacts.c, provider_versions.c
    recorded = set(
        conn.execute(
            select(ic.provider_contact_id).where(
                ic.import_job_id == job_id, ic.provider_contact_id.in_(list(versions))
            )
        ).scalars()
    )
    to_check = sorted(
        p for p, version in versions.items() if version is not None and p not in recorded
    )
    if not to_check:
        return Seen(recorded)
    owned, mine = _owned_versions(user_id, provider)
    found = conn.execute(
        select(v.provider_contact_id, v.version, v.contact_id)
        .join(contact_match_keys, owned)
        .where(mine, v.provider_contact_id.in_(to_check))
    )
    unchanged = {pcid: cid for pcid, version, cid in found if versions[pcid] == version}
    skipped = Action.SKIPPED.value
    rows = [(job_id, pcid, cid, skipped, UNCHANGED_DETAIL, now) for pcid, cid in unchanged.items()]
    insert_sqlite(conn, imported_contacts, AUDIT_COLUMNS, rows)
    return Seen(recorded, set(unchanged))
