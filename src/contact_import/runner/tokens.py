"""Keeping a job's access token fresh: refreshed shortly before it expires, or on demand after
a 401, with the grant row locked so two refreshes never race.

The refresh owns its transaction: it locks the grant row (``GrantStore.lock``), asks the
provider's token endpoint, and stores what came back (Microsoft rotates refresh tokens: the
new one is stored every time) before the lock is released. A worker that waited for the lock
finds the token another one just refreshed and uses it instead of refreshing again.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import Connection, Engine

from contact_import.errors import AccessRevoked
from contact_import.providers.oauth import oauth_provider, refresh_access_token
from contact_import.settings import Settings
from contact_import.store.grants import Grant, GrantStore
from contact_import.store.jobs import Job

__all__ = ["REFRESH_MARGIN", "TokenRefresher", "expiring"]

# Refresh this long before the provider's expiry, so a page never starts on a dying token.
REFRESH_MARGIN = timedelta(seconds=60)


def expiring(grant: Grant, now: datetime) -> bool:
    """The grant's access token is expired, or will be within ``REFRESH_MARGIN``."""
    expires = grant.access_token_expires_at
    return expires is not None and expires - REFRESH_MARGIN <= now


class TokenRefresher:
    """Hands out a job's grant with a usable access token, refreshing it when due.

    ``label`` names a provider as a user reads it ("Google"), for the reconnect message.
    """

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        client: httpx.Client,
        grants: GrantStore,
        *,
        label: Callable[[str], str],
    ) -> None:
        self._settings = settings
        self._engine = engine
        self._client = client
        self._grants = grants
        self._label = label

    def fresh_grant(self, job: Job, *, force: bool = False) -> Grant:
        """The job's grant; its token refreshed first if expiring, or always with ``force``
        (the provider refused it: 401)."""
        grant = self._grants.get(job.grant_id)
        if not (force or expiring(grant, datetime.now(UTC))):
            return grant
        try:
            with self._engine.begin() as conn:
                locked = self._grants.lock(conn, job.grant_id)
                if locked.access_token != grant.access_token and not expiring(
                    locked, datetime.now(UTC)
                ):
                    return locked  # someone refreshed it while we waited for the lock
                self._refresh(conn, job, locked)
        except AccessRevoked:
            # For good (invalid_grant, or nothing to refresh with): continuous sync stops
            # until the user reconnects.
            self._grants.mark_refresh_failed(grant.id)
            raise
        return self._grants.get(job.grant_id)

    def _refresh(self, conn: Connection, job: Job, locked: Grant) -> None:
        if not locked.refresh_token:
            label = self._label(job.provider)
            raise AccessRevoked(
                f"the {label} access token expired and there is no refresh token to renew it"
                f" — reconnect your {label} account"
            )
        tokens = refresh_access_token(
            self._client,
            oauth_provider(job.provider, self._settings),
            locked.refresh_token,
            now=datetime.now(UTC),
        )
        self._grants.update_tokens(
            conn,
            locked.id,
            access_token=tokens.access_token,
            refresh_token=tokens.refresh_token,
            expires_at=tokens.expires_at,
        )
