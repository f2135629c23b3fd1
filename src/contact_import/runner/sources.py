"""Build the right ContactSource for a job from its provider's registry entry and its grant.

The grant's access token comes fresh from ``runner.tokens.TokenRefresher``. This sits in the
runner, not in ``providers/``: it reads grants from the store, and providers never import the
store.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
from sqlalchemy import Engine

from contact_import.errors import AccessRevoked
from contact_import.providers.base import ContactSource
from contact_import.providers.registry import provider_label, provider_spec
from contact_import.runner.tokens import TokenRefresher
from contact_import.settings import Settings
from contact_import.store.grants import Grant, GrantStore
from contact_import.store.jobs import Job

__all__ = ["SourceFactory"]


class SourceFactory:
    """Turns a job into a ready-to-use provider client. Base URLs come from settings only."""

    def __init__(
        self, settings: Settings, engine: Engine, client: httpx.Client, grants: GrantStore
    ) -> None:
        self._settings = settings
        self._client = client
        self._tokens = TokenRefresher(settings, engine, client, grants, label=provider_label)

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
        return self._tokens.fresh_grant(job, force=force)
