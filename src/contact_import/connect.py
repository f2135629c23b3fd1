"""Connecting an account: the OAuth authorization-code flow (PKCE S256) that ends in a job.

``start`` is what `POST /api/v1/contacts/import/{provider}/start` does for a signed-in user;
``complete`` is the callback. The state is random, single use, bound to the user who started
the flow and valid for ten minutes; only its SHA-256 is stored.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import Engine, delete, insert, update

from contact_import.crypto import TokenCipher
from contact_import.errors import InvalidOAuthState, RequestRejected
from contact_import.providers.factory import PROVIDERS
from contact_import.providers.oauth import (
    authorization_url,
    exchange_code,
    new_pkce_verifier,
    oauth_provider,
)
from contact_import.settings import Settings
from contact_import.store.grants import GrantStore
from contact_import.store.jobs import Job, JobStore
from contact_import.store.schema import oauth_states

__all__ = ["STATE_TTL", "Connections", "callback_url"]

STATE_TTL = timedelta(minutes=10)


def callback_url(settings: Settings, provider: str) -> str:
    base = settings.public_base_url.rstrip("/")
    return f"{base}/api/v1/contacts/import/{provider}/callback"


def _hash(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


class Connections:
    def __init__(
        self,
        *,
        settings: Settings,
        engine: Engine,
        http: httpx.Client,
        cipher: TokenCipher,
        grants: GrantStore,
        jobs: JobStore,
    ) -> None:
        self._settings = settings
        self._engine = engine
        self._http = http
        self._cipher = cipher
        self._grants = grants
        self._jobs = jobs

    def start(self, user_id: str, provider: str, *, login_hint: str | None = None) -> str:
        """The provider's authorization URL for this user, with a fresh state and PKCE."""
        oauth = oauth_provider(_known(provider), self._settings)
        state, verifier = secrets.token_urlsafe(32), new_pkce_verifier()
        redirect_uri = callback_url(self._settings, provider)
        now = datetime.now(UTC)
        with self._engine.begin() as conn:
            conn.execute(delete(oauth_states).where(oauth_states.c.expires_at < now))
            conn.execute(
                insert(oauth_states).values(
                    state_hash=_hash(state),
                    user_id=user_id,
                    provider=provider,
                    code_verifier_enc=self._cipher.encrypt(verifier),
                    redirect_uri=redirect_uri,
                    created_at=now,
                    expires_at=now + STATE_TTL,
                )
            )
        return authorization_url(
            oauth,
            redirect_uri=redirect_uri,
            state=state,
            code_verifier=verifier,
            login_hint=login_hint,
        )

    def complete(self, provider: str, *, code: str, state: str) -> Job:
        """Use up the state, exchange the code, store the grant, queue the import job.

        A bad, expired or reused state raises InvalidOAuthState and creates nothing.
        """
        oauth = oauth_provider(_known(provider), self._settings)
        user_id, verifier, redirect_uri = self._consume_state(provider, state)
        tokens = exchange_code(
            self._http,
            oauth,
            code=code,
            redirect_uri=redirect_uri,
            code_verifier=verifier,
            now=datetime.now(UTC),
        )
        grant_id = self._grants.create(
            user_id,
            provider,
            access_token=tokens.access_token,
            refresh_token=tokens.refresh_token,
            expires_at=tokens.expires_at,
            scopes=tokens.scope,
        )
        job, _created = self._jobs.create(user_id, provider, grant_id)
        return job

    def _consume_state(self, provider: str, state: str) -> tuple[str, str, str]:
        now = datetime.now(UTC)
        c = oauth_states.c
        # One UPDATE decides: two callbacks racing with the same state cannot both win.
        stmt = (
            update(oauth_states)
            .where(c.state_hash == _hash(state), c.provider == provider)
            .where(c.used_at.is_(None), c.expires_at > now)
            .values(used_at=now)
            .returning(c.user_id, c.code_verifier_enc, c.redirect_uri)
        )
        with self._engine.begin() as conn:
            row = conn.execute(stmt).first()
        if row is None:
            raise InvalidOAuthState(
                "this sign-in link is invalid, expired or already used — start the import again"
            )
        return row.user_id, self._cipher.decrypt(row.code_verifier_enc), row.redirect_uri


def _known(provider: str) -> str:
    if provider not in PROVIDERS:
        raise RequestRejected(f"unknown provider {provider!r}; one of {', '.join(PROVIDERS)}")
    return provider
