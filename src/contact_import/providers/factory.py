"""Build the right ContactSource for a job from its provider's registry entry and its grant.

It also keeps the grant's access token fresh: refreshed shortly before it expires, or on
demand after a 401, with the grant row locked so two refreshes never race (Microsoft rotates
refresh tokens: the new one is stored every time).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import Engine

from contact_import.errors import AccessRevoked
from contact_import.providers.base import ContactSource
from contact_import.providers.oauth import oauth_provider, refresh_access_token
from contact_import.providers.registry import provider_label, provider_spec
from contact_import.settings import Settings
from contact_import.store.grants import Grant, GrantStore
from contact_import.store.jobs import Job

__all__ = ["SourceFactory"]

# Refresh this long before the provider's expiry, so a page never starts on a dying token.
REFRESH_MARGIN = timedelta(seconds=60)


class SourceFactory:
    """Turns a job into a ready-to-use provider client. Base URLs come from settings only."""

    def __init__(
        self, settings: Settings, engine: Engine, client: httpx.Client, grants: GrantStore
    ) -> None:
        self._settings = settings
        self._engine = engine
        self._client = client
        self._grants = grants

    def __call__(
        self,
        job: Job,
        *,
        sleep: Callable[[float], None] = time.sleep,
        refresh: bool = False,
        incremental: bool = True,
    ) -> ContactSource:
        """``refresh`` forces a new access token (after a 401); ``incremental`` False ignores
        the stored sync token (it expired: list everything)."""
        spec = provider_spec(job.provider)
        grant = self._fresh_grant(job, force=refresh)
        if not grant.access_token:
            raise AccessRevoked(f"{spec.label} access is missing — reconnect your account")
        return spec.source_class(
            self._client,
            api_url=spec.api_url(self._settings),
            access_token=grant.access_token,
            page_size=self._settings.page_size,
            max_retries=self._settings.provider_max_retries,
            sleep=sleep,
            sync_token=grant.sync_token if incremental else None,
        )

    def _fresh_grant(self, job: Job, *, force: bool) -> Grant:
        grant = self._grants.get(job.grant_id)
        if not (force or _expiring(grant)):
            return grant
        with self._engine.begin() as conn:
            locked = self._grants.get(job.grant_id, for_update=conn)
            if locked.access_token != grant.access_token and not _expiring(locked):
                return locked  # someone refreshed it while we waited for the lock
            if not locked.refresh_token:
                raise AccessRevoked(
                    f"{_label(job.provider)} access expired — reconnect your account"
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
        return self._grants.get(job.grant_id)


def _expiring(grant: Grant) -> bool:
    expires = grant.access_token_expires_at
    return expires is not None and expires - REFRESH_MARGIN <= datetime.now(UTC)


def _label(provider: str) -> str:
    return provider_label(provider)
