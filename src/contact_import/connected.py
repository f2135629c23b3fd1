"""A user's connected accounts: list them, disconnect one, or connect one with tokens the app
already holds ("bring your own tokens").

Disconnecting forgets every token of the grant and cancels its active job in ONE transaction
first, then revokes at the provider with the token still in memory: forgetting never waits on
the provider, and a provider that fails (5xx, timeout) leaves nothing here, only
``revoked_at_provider: false`` in the answer. Imported contacts stay.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
from sqlalchemy import Engine

from contact_import.domain.webhooks import EventType
from contact_import.metrics import Metrics
from contact_import.providers.account import revoke_token
from contact_import.providers.account_lookup import lookup_account_email
from contact_import.providers.registry import provider_spec
from contact_import.settings import Settings
from contact_import.store.grants import (
    ACTIVE,
    ConnectedAccount,
    Grant,
    GrantStore,
    connected_accounts,
)
from contact_import.store.jobs import Job, JobStore
from contact_import.store.webhooks import enqueue_event

__all__ = [
    "AccountView",
    "ConnectedAccounts",
    "Disconnected",
    "NothingConnected",
    "OwnTokens",
]

log = logging.getLogger("contact_import.connected")


def _revoked_data(grant: Grant, cancelled_job: UUID | None) -> dict[str, Any]:
    """``connection.revoked``'s data: whose account, and the import it cancelled."""
    return {
        "user_id": grant.user_id,
        "provider": grant.provider,
        "account_email": grant.account_email,
        "cancelled_job_id": None if cancelled_job is None else str(cancelled_job),
    }


class NothingConnected(LookupError):
    """The user has no connected account at this provider (the route answers 404)."""


@dataclass(frozen=True)
class OwnTokens:
    """Provider tokens the app obtained itself (Supabase's ``provider_token`` and
    ``provider_refresh_token``, say)."""

    access_token: str
    refresh_token: str | None = None
    expires_in: int | None = None

    def __repr__(self) -> str:
        return f"OwnTokens(access_token='***', expires_in={self.expires_in!r})"


@dataclass(frozen=True)
class AccountView:
    """One connected account as the connections route shows it."""

    account: ConnectedAccount
    next_sync_at: datetime | None


@dataclass(frozen=True)
class Disconnected:
    provider: str
    revoked_at_provider: bool
    cancelled_job_id: UUID | None


class ConnectedAccounts:
    def __init__(
        self,
        *,
        settings: Settings,
        engine: Engine,
        http: httpx.Client,
        grants: GrantStore,
        jobs: JobStore,
        metrics: Metrics,
    ) -> None:
        self._settings = settings
        self._engine = engine
        self._http = http
        self._grants = grants
        self._jobs = jobs
        self._metrics = metrics

    def list(self, user_id: str) -> list[AccountView]:
        """The user's grants, with when continuous sync imports each next (None: it will not)."""
        with self._engine.connect() as conn:
            accounts = connected_accounts(conn, user_id)
        return [AccountView(a, self._next_sync(a)) for a in accounts]

    def _next_sync(self, account: ConnectedAccount) -> datetime | None:
        interval = self._settings.sync_interval_seconds
        if not interval or account.status != ACTIVE:
            return None
        since = account.last_synced_at or account.connected_at
        return max(since + timedelta(seconds=interval), datetime.now(UTC))

    def disconnect(self, user_id: str, provider: str) -> Disconnected:
        """Forget the grant's tokens and cancel its active job, then revoke at the provider.

        NothingConnected when no grant (or only a disconnected one) exists.
        """
        spec = provider_spec(provider)
        with self._engine.begin() as conn:
            grant = self._grants.forget(conn, user_id, spec.name)
            if grant is None:
                raise NothingConnected(f"no {spec.label} account is connected")
            cancelled = self._jobs.cancel_active(conn, user_id, spec.name)
            self._jobs.forget_cursors(conn, grant.id)
            if self._jobs.webhooks:  # the event commits with the forgetting, or not at all
                enqueue_event(conn, EventType.CONNECTION_REVOKED, _revoked_data(grant, cancelled))
        revoke_url = spec.revoke_url(self._settings)
        token = grant.refresh_token or grant.access_token
        revoked = bool(revoke_url and token and revoke_token(self._http, revoke_url, token))
        log.info(
            "account disconnected",
            extra={"provider": spec.name, "revoked_at_provider": revoked},
        )
        return Disconnected(spec.name, revoked, cancelled)

    def bring_tokens(self, user_id: str, provider: str, tokens: OwnTokens) -> tuple[Job, bool]:
        """Store the app's tokens as the user's grant (sealed, refreshed like OAuth grants) and
        queue an import with them, or return the active one. Returns (job, created)."""
        spec = provider_spec(provider)
        expires_at = None
        if tokens.expires_in is not None:
            expires_at = datetime.now(UTC) + timedelta(seconds=tokens.expires_in)
        email = lookup_account_email(self._http, self._settings, spec.name, tokens.access_token)
        grant_id = self._grants.create(
            user_id,
            spec.name,
            access_token=tokens.access_token,
            refresh_token=tokens.refresh_token,
            expires_at=expires_at,
            account_email=email,
        )
        job, created = self._jobs.create(user_id, spec.name, grant_id)
        if created:
            self._metrics.record_queued("user")
        return job, created
