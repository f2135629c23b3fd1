"""Provider grants (OAuth tokens), encrypted at rest; plaintext exists only in memory."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID, uuid4

from sqlalchemy import Engine, insert, select

from contact_import.crypto import TokenCipher
from contact_import.errors import AccessRevoked
from contact_import.store.schema import provider_grants

__all__ = ["Grant", "GrantStore"]


@dataclass(frozen=True, slots=True)
class Grant:
    """Decrypted credentials. Its repr hides the tokens so a stray log line cannot leak them."""

    id: UUID
    user_id: str
    provider: str
    access_token: str | None
    refresh_token: str | None
    access_token_expires_at: datetime | None

    def __repr__(self) -> str:
        return f"Grant(id={self.id}, user_id={self.user_id!r}, provider={self.provider!r})"


class GrantStore:
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
    ) -> UUID:
        grant_id = uuid4()
        now = datetime.now(UTC)
        with self._engine.begin() as conn:
            conn.execute(
                insert(provider_grants).values(
                    id=grant_id,
                    user_id=user_id,
                    provider=provider,
                    access_token_enc=self._seal(access_token),
                    refresh_token_enc=self._seal(refresh_token),
                    access_token_expires_at=expires_at,
                    scopes=scopes,
                    created_at=now,
                    updated_at=now,
                )
            )
        return grant_id

    def get(self, grant_id: UUID | None) -> Grant:
        """The grant, decrypted; AccessRevoked when it is gone (the user must reconnect)."""
        row = None
        if grant_id is not None:
            with self._engine.connect() as conn:
                row = conn.execute(
                    select(provider_grants).where(provider_grants.c.id == grant_id)
                ).first()
        if row is None:
            raise AccessRevoked("the connection to your account is gone — reconnect it")
        return Grant(
            id=row.id,
            user_id=row.user_id,
            provider=row.provider,
            access_token=self._open(row.access_token_enc),
            refresh_token=self._open(row.refresh_token_enc),
            access_token_expires_at=row.access_token_expires_at,
        )

    def _seal(self, token: str | None) -> str | None:
        return None if token is None else self._cipher.encrypt(token)

    def _open(self, sealed: str | None) -> str | None:
        return None if sealed is None else self._cipher.decrypt(sealed)
