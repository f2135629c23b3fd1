"""What a page's contacts were before this page: recorded by this job already, or unchanged at
the provider since they were last imported. Read first in every page write (``store.page``).

- **Recorded**: provider ids with an audit row of this job (a page listed twice, or a listing
  restarted from the top): not counted twice.
- **Unchanged**: the provider version (Google ``etag``, Graph ``changeKey``) is the one
  recorded in ``provider_versions`` when the contact was last merged, into a contact that still
  owns its identity key (a contact deleted here, or merged into another, no longer does):
  provider id → that contact. The first copy of a contact repeated in the page decides.

On Postgres both are ONE statement: each provider id of the page, sent as one JSON parameter,
is two primary-key probes (LATERAL joins with a LIMIT, which the planner cannot flatten into a
scan: with ``= ANY`` it scanned all the job's audit rows, or all the user's versions, on every
page, and a long import grew quadratic in its length). On SQLite, in process, two plain reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, Select, Text, Uuid, and_, bindparam, literal, select, true

from contact_import.domain.contact import IncomingContact, RejectedContact
from contact_import.domain.merge import identity_key
from contact_import.store.contacts import Incoming
from contact_import.store.db import is_postgres
from contact_import.store.json_params import json_param, json_rows, json_value
from contact_import.store.schema import contact_match_keys, imported_contacts, provider_versions

__all__ = ["Seen", "seen_before"]


@dataclass(frozen=True, slots=True)
class Seen:
    recorded: set[str] = field(default_factory=set)
    unchanged: dict[str, UUID] = field(default_factory=dict)


def seen_before(
    conn: Connection,
    job_id: UUID,
    user_id: str,
    provider: str,
    contacts: Sequence[Incoming | IncomingContact],
) -> Seen:
    """The page's recorded and unchanged contacts (see the module doc). An ``IncomingContact``
    (not normalized yet) must pass ``domain.contact.looked_up_as_sent``."""
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
        return _seen_sqlite(conn, job_id, user_id, provider, versions)
    seen = Seen()
    params = {"job_id": job_id, "user_id": user_id, "rows": json_value(list(versions.items()))}
    for pcid, recorded, contact_id in conn.execute(_one_statement(provider), params):
        if recorded:
            seen.recorded.add(pcid)
        else:
            seen.unchanged[pcid] = contact_id
    return seen


def _owned_versions(user_id: Any, provider: str) -> tuple[Any, Any]:
    """The versions of this user and provider whose contact still owns their identity key."""
    v, k = provider_versions.c, contact_match_keys.c
    identity = literal(identity_key(provider, ""), Text) + v.provider_contact_id
    owned = and_(k.user_id == v.user_id, k.key == identity, k.contact_id == v.contact_id)
    return owned, and_(v.user_id == user_id, v.provider == provider)


@lru_cache(maxsize=16)
def _one_statement(provider: str) -> Select[Any]:
    """Built once per provider; executed with ``job_id``, ``user_id`` and ``rows`` (a JSON
    list of [provider id, version or null])."""
    v, ic = provider_versions.c, imported_contacts.c
    columns = [("pcid", Text()), ("version", Text())]
    page = json_rows(json_param("rows"), columns).subquery()
    recorded = (
        select(literal(True).label("found"))
        .where(
            ic.import_job_id == bindparam("job_id", type_=Uuid()),
            ic.provider_contact_id == page.c.pcid,
        )
        .limit(1)
        .lateral()
    )
    owned, mine = _owned_versions(bindparam("user_id", type_=Text()), provider)
    unchanged = (
        select(v.contact_id)
        .join(contact_match_keys, owned)
        .where(mine, v.provider_contact_id == page.c.pcid, v.version == page.c.version)
        .limit(1)
        .lateral()
    )
    return (
        select(page.c.pcid, recorded.c.found.is_not(None), unchanged.c.contact_id)
        .select_from(page)
        .outerjoin(recorded, true())
        .outerjoin(unchanged, true())
        .where(recorded.c.found.is_not(None) | unchanged.c.contact_id.is_not(None))
    )


def _seen_sqlite(
    conn: Connection, job_id: UUID, user_id: str, provider: str, versions: dict[str, str | None]
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
    return Seen(recorded, unchanged)
