"""OAuth states: a started sign-in, single use, bound to the user and the browser that began it.

Only hashes are stored (of the state, and of the browser's nonce cookie), so a leaked table
cannot complete anyone's flow. Each (user, provider) keeps at most ``MAX_LIVE_STATES`` live
states: a new start replaces the oldest, so one user cannot fill the table.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, delete, func, insert, select, update

from contact_import.store.db import is_postgres
from contact_import.store.namespace import lock_seed
from contact_import.store.schema import oauth_states

__all__ = [
    "MAX_LIVE_STATES",
    "ConsumedState",
    "NewState",
    "consume_state",
    "prune_expired_states",
    "save_state",
]

MAX_LIVE_STATES = 5
# Rows one prune deletes at most: a tick must stay within its budget even after a flood.
_PRUNE_BATCH = 10_000


@dataclass(frozen=True, slots=True)
class NewState:
    """A row of ``oauth_states`` as ``start`` writes it (the field names are the columns)."""

    state_hash: str
    browser_hash: str
    user_id: str
    provider: str
    code_verifier_enc: str
    redirect_uri: str
    created_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class ConsumedState:
    """What a used-up state was bound to. ``browser_hash`` is None for a state saved before
    browser binding existed: only its user's JWT can complete it."""

    user_id: str
    browser_hash: str | None
    code_verifier_enc: str
    redirect_uri: str


def save_state(engine: Engine, new: NewState) -> None:
    """Store a started flow; the (user, provider)'s oldest live states beyond the limit go."""
    c = oauth_states.c
    mine = (c.user_id == new.user_id, c.provider == new.provider)
    newest_live = (
        select(c.state_hash)
        .where(*mine, c.used_at.is_(None), c.expires_at > new.created_at)
        .order_by(c.created_at.desc(), c.state_hash)
        .limit(MAX_LIVE_STATES - 1)
    )
    with engine.begin() as conn:
        if is_postgres(conn):
            # Serializes one user's starts for a provider, so concurrent starts cannot all keep
            # their state past the limit. SQLite's BEGIN IMMEDIATE already serializes writers.
            name = f"oauth-states:{new.provider}:{new.user_id}"
            key = func.hashtextextended(name, lock_seed(conn))
            conn.execute(select(func.pg_advisory_xact_lock(key)))
        # Delete first, then insert: the new state is never the one that goes.
        conn.execute(delete(oauth_states).where(*mine, c.state_hash.not_in(newest_live)))
        conn.execute(insert(oauth_states).values(asdict(new)))


def consume_state(
    engine: Engine, state_hash: str, provider: str, *, now: datetime
) -> ConsumedState | None:
    """Use the state up and say what it was bound to; None when unknown, expired or used."""
    c = oauth_states.c
    # One UPDATE decides: two callbacks racing with the same state cannot both win.
    stmt = (
        update(oauth_states)
        .where(c.state_hash == state_hash, c.provider == provider)
        .where(c.used_at.is_(None), c.expires_at > now)
        .values(used_at=now)
        .returning(c.user_id, c.browser_hash, c.code_verifier_enc, c.redirect_uri)
    )
    with engine.begin() as conn:
        row = conn.execute(stmt).first()
    if row is None:
        return None
    return ConsumedState(row.user_id, row.browser_hash, row.code_verifier_enc, row.redirect_uri)


def prune_expired_states(engine: Engine, *, now: datetime | None = None) -> int:
    """Delete expired states (used or not), a bounded batch at a time; how many went.

    SKIP LOCKED: overlapping ticks each take other rows instead of waiting on each other.
    """
    c = oauth_states.c
    expired = (
        select(c.state_hash)
        .where(c.expires_at < (now or datetime.now(UTC)))
        .limit(_PRUNE_BATCH)
        .with_for_update(skip_locked=True)
    )
    with engine.begin() as conn:
        return conn.execute(delete(oauth_states).where(c.state_hash.in_(expired))).rowcount
