"""Provider grants (OAuth tokens), encrypted at rest; plaintext exists only in memory."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Select,
    Text,
    case,
    func,
    literal,
    null,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from contact_import.crypto import TokenCipher
from contact_import.errors import AccessRevoked
from contact_import.store.db import is_postgres
from contact_import.store.job_rows import db_now
from contact_import.store.schema import provider_grants

__all__ = [
    "ACTIVE",
    "REFRESH_FAILED",
    "REVOKED",
    "ConnectedAccount",
    "Grant",
    "GrantStore",
    "account_email",
    "connected_accounts",
]

# A grant's status (provider_grants.status).
ACTIVE, REVOKED, REFRESH_FAILED = "active", "revoked", "refresh_failed"
_g = provider_grants.c
# Every column of a grant that holds a token: a disconnect empties them all.
_FORGOTTEN: dict[str, Any] = dict.fromkeys(
    ("access_token_enc", "refresh_token_enc", "sync_token_enc", "access_token_expires_at")
)


@dataclass(frozen=True, slots=True)
class Grant:
    """Decrypted credentials. Its repr hides the tokens so a stray log line cannot leak them."""

    id: UUID
    user_id: str
    provider: str
    access_token: str | None
    refresh_token: str | None
    access_token_expires_at: datetime | None
    sync_token: str | None = None
    account_email: str | None = None
    status: str = ACTIVE
    last_synced_at: datetime | None = None

    def __repr__(self) -> str:
        return f"Grant(id={self.id}, user_id={self.user_id!r}, provider={self.provider!r})"


class GrantStore:
    """One grant per (user, provider); every token column is Fernet-encrypted.

    ``create``, ``get`` and ``clear_sync_token`` own their transaction; the methods taking a
    ``Connection`` first run inside the caller's.
    """

    def __init__(self, engine: Engine, cipher: TokenCipher) -> None:
        self._engine = engine
        self._cipher = cipher

    def create(
        self,
        user_id: str,
        provider: str,
        *,
        access_token: str | None,
        refresh_token: str | None = None,
        expires_at: datetime | None = None,
        scopes: str | None = None,
        account_email: str | None = None,
    ) -> UUID:
        """Store a (re)connection: a new grant, or new tokens on the user's existing one.

        The sync token survives a reconnect: if the user picked another account this time, the
        provider refuses it and the next import falls back to a full listing. A reconnect makes
        the grant ``active`` again; after a disconnect it is connected anew from now.
        """
        now = datetime.now(UTC)
        tokens: dict[str, Any] = {
            "access_token_enc": self._seal(access_token),
            "refresh_token_enc": self._seal(refresh_token),
            "access_token_expires_at": expires_at,
            "scopes": scopes,
            "status": ACTIVE,
            "updated_at": now,
        }
        # After a disconnect the account may be another one: its email, or none; else a lookup
        # that found nothing this time keeps the one we had.
        email = literal(account_email, Text)
        reconnected: dict[str, Any] = {
            "account_email": case(
                (_g.status == REVOKED, email), else_=func.coalesce(email, _g.account_email)
            ),
            "created_at": case((_g.status == REVOKED, now), else_=_g.created_at),
            "last_synced_at": case((_g.status == REVOKED, null()), else_=_g.last_synced_at),
        }
        first = tokens | {"account_email": account_email}
        with self._engine.begin() as conn:
            insert = postgresql.insert if is_postgres(conn) else sqlite.insert
            stmt = (
                insert(provider_grants)
                .values(id=uuid4(), user_id=user_id, provider=provider, created_at=now, **first)
                .on_conflict_do_update(
                    index_elements=["user_id", "provider"], set_=reconnected | tokens
                )
                .returning(provider_grants.c.id)
            )
            grant_id: UUID = conn.execute(stmt).scalar_one()
        return grant_id

    def get(self, grant_id: UUID | None) -> Grant:
        """The grant, decrypted; AccessRevoked when it is gone (the user must reconnect)."""
        with self._engine.connect() as conn:
            return self._grant(conn.execute(_by_id(grant_id)).first())

    def lock(self, conn: Connection, grant_id: UUID | None) -> Grant:
        """The grant, its row locked in ``conn``'s transaction until it ends.

        A refresh holds it: two refreshes must not race (Microsoft rotates refresh tokens,
        so the loser would store a token that is already dead).
        """
        return self._grant(conn.execute(_by_id(grant_id).with_for_update()).first())

    def update_tokens(
        self,
        conn: Connection,
        grant_id: UUID,
        *,
        access_token: str,
        refresh_token: str | None,
        expires_at: datetime | None,
    ) -> None:
        """Store refreshed tokens in ``conn``'s transaction (the one holding ``lock``); a
        rotated refresh token replaces the old one."""
        values: dict[str, Any] = {
            "access_token_enc": self._seal(access_token),
            "access_token_expires_at": expires_at,
            "updated_at": datetime.now(UTC),
        }
        if refresh_token is not None:
            values["refresh_token_enc"] = self._seal(refresh_token)
        conn.execute(update(provider_grants).where(_kept(grant_id)).values(values))

    def set_sync_token(self, conn: Connection, grant_id: UUID, token: str | None) -> None:
        """Remember (or forget) where the next incremental import starts, in ``conn``'s
        transaction."""
        conn.execute(
            update(provider_grants)
            .where(_kept(grant_id))
            .values(sync_token_enc=self._seal(token), updated_at=datetime.now(UTC))
        )

    def record_listing(self, conn: Connection, grant_id: UUID, sync_token: str | None) -> None:
        """A listing of the account completed (in the last page's transaction): continuous
        sync counts from now, and ``sync_token`` (if any) starts the next incremental one."""
        values: dict[str, Any] = {"last_synced_at": db_now(conn), "updated_at": db_now(conn)}
        if sync_token:
            values["sync_token_enc"] = self._seal(sync_token)
        conn.execute(update(provider_grants).where(_kept(grant_id)).values(values))

    def mark_refresh_failed(self, grant_id: UUID) -> None:
        """The provider refused a refresh for good: stop syncing it until the user reconnects
        (a transaction of its own: the refresh's was rolled back)."""
        with self._engine.begin() as conn:
            conn.execute(
                update(provider_grants)
                .where(_g.id == grant_id, _g.status == ACTIVE)
                .values(status=REFRESH_FAILED, updated_at=db_now(conn))
            )

    def forget(self, conn: Connection, user_id: str, provider: str) -> Grant | None:
        """Disconnect: every token of the user's grant is deleted and it is ``revoked``, in
        ``conn``'s transaction (its row locked, so a refresh in flight cannot write a token
        back). Returns the grant as it was (to revoke at the provider); None: nothing
        connected."""
        row = conn.execute(
            select(provider_grants)
            .where(_g.user_id == user_id, _g.provider == provider, _g.status != REVOKED)
            .with_for_update()
        ).first()
        if row is None:
            return None
        conn.execute(
            update(provider_grants)
            .where(_g.id == row.id)
            .values(_FORGOTTEN | {"status": REVOKED, "updated_at": db_now(conn)})
        )
        return self._grant(row)

    def email_of(self, user_id: str, provider: str) -> str | None:
        """The connected account's email (status page); None when the provider did not tell."""
        with self._engine.connect() as conn:
            return account_email(conn, user_id, provider)

    def clear_sync_token(self, grant_id: UUID) -> None:
        """Forget the sync token in a transaction of its own (the provider refused it)."""
        with self._engine.begin() as conn:
            self.set_sync_token(conn, grant_id, None)

    def _grant(self, row: Any) -> Grant:
        if row is None:
            raise AccessRevoked("the connection to your account is gone — reconnect it")
        return Grant(
            id=row.id,
            user_id=row.user_id,
            provider=row.provider,
            access_token=self._open(row.access_token_enc),
            refresh_token=self._open(row.refresh_token_enc),
            access_token_expires_at=row.access_token_expires_at,
            sync_token=self._open(row.sync_token_enc),
            account_email=row.account_email,
            status=row.status,
            last_synced_at=row.last_synced_at,
        )

    def _seal(self, token: str | None) -> str | None:
        return None if token is None else self._cipher.encrypt(token)

    def _open(self, sealed: str | None) -> str | None:
        return None if sealed is None else self._cipher.decrypt(sealed)


def _by_id(grant_id: UUID | None) -> Select[Any]:
    return select(provider_grants).where(provider_grants.c.id == grant_id)


def _kept(grant_id: UUID) -> ColumnElement[bool]:
    """The grant, unless the user disconnected it: nothing writes a token back after that."""
    return (_g.id == grant_id) & (_g.status != REVOKED)


@dataclass(frozen=True, slots=True)
class ConnectedAccount:
    """A grant as its user sees it: no token, ever."""

    provider: str
    account_email: str | None
    status: str
    connected_at: datetime
    last_synced_at: datetime | None


def connected_accounts(conn: Connection, user_id: str) -> list[ConnectedAccount]:
    """The user's grants, disconnected ones included (status ``revoked``), by provider."""
    rows = conn.execute(
        select(_g.provider, _g.account_email, _g.status, _g.created_at, _g.last_synced_at)
        .where(_g.user_id == user_id)
        .order_by(_g.provider)
    )
    return [ConnectedAccount(*row) for row in rows]


def account_email(conn: Connection, user_id: str, provider: str) -> str | None:
    """The email of the user's connected account at ``provider``, when the provider told it."""
    stmt = select(_g.account_email).where(_g.user_id == user_id, _g.provider == provider)
    return conn.execute(stmt).scalar_one_or_none()
