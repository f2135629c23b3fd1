"""Connecting an account: the OAuth authorization-code flow (PKCE S256) that ends in a job.

``start`` is what `POST /api/v1/contacts/import/{provider}/start` does for a signed-in user;
``complete_in_browser`` and ``complete_as_user`` are the two callbacks. The state is random,
single use and valid for ten minutes, and it is bound twice: to the user who started the flow
and to the browser that started it (a random nonce, sent back to the browser as a cookie). A
callback completes only with proof of one of the two (RFC 9700 §4.7): the nonce cookie, or the
starting user's JWT. Without it the state is used up and nothing is created for anyone, so an
attacker cannot send their own consent link to a victim and import the victim's contacts.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import Engine

from contact_import.crypto import TokenCipher
from contact_import.errors import InvalidOAuthState
from contact_import.metrics import Metrics
from contact_import.providers.account_lookup import lookup_account_email
from contact_import.providers.oauth import (
    OAuthProvider,
    authorization_url,
    exchange_code,
    new_pkce_verifier,
    oauth_provider,
)
from contact_import.settings import Settings
from contact_import.store.grants import GrantStore
from contact_import.store.jobs import Job, JobStore
from contact_import.store.oauth_states import (
    ConsumedState,
    NewState,
    consume_state,
    save_state,
)

__all__ = [
    "OTHER_BROWSER",
    "OTHER_USER",
    "STATE_TTL",
    "Connections",
    "StartedFlow",
    "callback_url",
]

STATE_TTL = timedelta(minutes=10)
OTHER_BROWSER = "this sign-in was started in another browser — start the import again"
OTHER_USER = "this sign-in was started by another user — start the import again"
_INVALID = "this sign-in link is invalid, expired or already used — start the import again"
# RFC 6749 appendix A: code and state are printable ASCII. Anything else (or anything huge)
# is refused before it reaches the database or the provider.
_CODE = re.compile(r"[\x20-\x7e]{1,4096}")
_STATE = re.compile(r"[\x20-\x7e]{1,512}")


def callback_url(settings: Settings, provider: str) -> str:
    base = settings.public_base_url.rstrip("/")
    return f"{base}/api/v1/contacts/import/{provider}/callback"


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass(frozen=True)
class StartedFlow:
    """A started sign-in: where to send the browser, and the nonce that browser must keep."""

    auth_url: str
    state: str = field(repr=False)
    browser_nonce: str = field(repr=False)


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
        metrics: Metrics,
    ) -> None:
        self._metrics = metrics
        self._settings = settings
        self._engine = engine
        self._http = http
        self._cipher = cipher
        self._grants = grants
        self._jobs = jobs

    def start(self, user_id: str, provider: str, *, login_hint: str | None = None) -> StartedFlow:
        """A fresh state, PKCE pair and browser nonce for this user; the provider's URL."""
        oauth = oauth_provider(provider, self._settings)  # UnknownProvider: a 400
        state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        verifier = new_pkce_verifier()
        redirect_uri = callback_url(self._settings, provider)
        now = datetime.now(UTC)
        save_state(
            self._engine,
            NewState(
                state_hash=_hash(state),
                browser_hash=_hash(nonce),
                user_id=user_id,
                provider=provider,
                code_verifier_enc=self._cipher.encrypt(verifier),
                redirect_uri=redirect_uri,
                created_at=now,
                expires_at=now + STATE_TTL,
            ),
        )
        url = authorization_url(
            oauth,
            redirect_uri=redirect_uri,
            state=state,
            code_verifier=verifier,
            login_hint=login_hint,
        )
        return StartedFlow(url, state, nonce)

    def complete_in_browser(
        self, provider: str, *, code: str, state: str, browser_nonce: str | None
    ) -> Job:
        """The GET callback: completes only in the browser that started (its nonce cookie)."""

        def same_browser(row: ConsumedState) -> bool:
            if browser_nonce is None or row.browser_hash is None:
                return False
            return hmac.compare_digest(_hash(browser_nonce), row.browser_hash)

        return self._complete(provider, code, state, same_browser, OTHER_BROWSER)

    def complete_as_user(self, provider: str, *, code: str, state: str, user_id: str) -> Job:
        """The POST callback of an app on another site: completes only for the starting user."""

        def same_user(row: ConsumedState) -> bool:
            return hmac.compare_digest(row.user_id.encode(), user_id.encode())

        return self._complete(provider, code, state, same_user, OTHER_USER)

    def _complete(
        self,
        provider: str,
        code: str,
        state: str,
        proven: Callable[[ConsumedState], bool],
        refusal: str,
    ) -> Job:
        """Use up the state; with proof, exchange the code, store the grant, queue the job.

        A bad, expired or reused state, or one without proof, raises InvalidOAuthState and
        creates nothing: no code exchange, no grant, no job.
        """
        oauth = oauth_provider(provider, self._settings)
        if not _STATE.fullmatch(state) or not _CODE.fullmatch(code):
            raise InvalidOAuthState(_INVALID)
        row = consume_state(self._engine, _hash(state), provider, now=datetime.now(UTC))
        if row is None:
            raise InvalidOAuthState(_INVALID)
        if not proven(row):
            raise InvalidOAuthState(refusal)
        return self._connect(oauth, row, code)

    def _connect(self, oauth: OAuthProvider, row: ConsumedState, code: str) -> Job:
        """Exchange the code, store the grant, queue the import job."""
        tokens = exchange_code(
            self._http,
            oauth,
            code=code,
            redirect_uri=row.redirect_uri,
            code_verifier=self._cipher.decrypt(row.code_verifier_enc),
            now=datetime.now(UTC),
        )
        email = lookup_account_email(self._http, self._settings, oauth.name, tokens.access_token)
        grant_id = self._grants.create(
            row.user_id,
            oauth.name,
            access_token=tokens.access_token,
            refresh_token=tokens.refresh_token,
            expires_at=tokens.expires_at,
            scopes=tokens.scope,
            account_email=email,
        )
        job, created = self._jobs.create(row.user_id, oauth.name, grant_id)
        if created:
            self._metrics.record_queued("user")
        return job
