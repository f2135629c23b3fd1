"""What the sandbox's OAuth servers remember: registered clients, pending authorization codes
and refresh tokens."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from contact_import.sandbox.accounts import Account
from contact_import.sandbox.oauth_wire import (
    BAD_CODE,
    BAD_REFRESH,
    CODE_EXPIRED,
    CODE_REDEEMED,
    REVOKED,
    TokenError,
)

__all__ = [
    "CODE_TTL",
    "DEFAULT_CLIENTS",
    "GOOGLE_CLIENT_ID",
    "GOOGLE_CLIENT_SECRET",
    "MICROSOFT_CLIENT_ID",
    "MICROSOFT_CLIENT_SECRET",
    "OAuthStore",
    "PendingCode",
    "RefreshGrant",
    "RegisteredClient",
]

GOOGLE_CLIENT_ID = "sandbox-google-client"
GOOGLE_CLIENT_SECRET = "sandbox-google-secret"  # noqa: S105 (the sandbox's, public on purpose)
MICROSOFT_CLIENT_ID = "sandbox-microsoft-client"
MICROSOFT_CLIENT_SECRET = "sandbox-microsoft-secret"  # noqa: S105
CODE_TTL = 60.0


@dataclass(frozen=True, slots=True)
class RegisteredClient:
    """An OAuth client registered with one of the sandbox's providers."""

    provider: str  # "google" | "microsoft"
    client_id: str
    client_secret: str


DEFAULT_CLIENTS = (
    RegisteredClient("google", GOOGLE_CLIENT_ID, GOOGLE_CLIENT_SECRET),
    RegisteredClient("microsoft", MICROSOFT_CLIENT_ID, MICROSOFT_CLIENT_SECRET),
)


# --- codes and refresh tokens ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PendingCode:
    account: Account
    client_id: str
    redirect_uri: str
    challenge: str
    scope: str
    offline: bool
    expires_at: float


@dataclass(slots=True)
class RefreshGrant:
    account: Account
    client_id: str
    scope: str
    uses_left: int | None = None  # None: valid until revoked; a rotated-out token's grace


class OAuthStore:
    """Registered clients, pending authorization codes and refresh tokens; thread-safe.

    ``clock`` is the sandbox's one clock: codes and access tokens (``SandboxState``) expire on
    it, so a test moves it instead of waiting.
    """

    def __init__(
        self,
        clients: tuple[RegisteredClient, ...] = DEFAULT_CLIENTS,
        *,
        code_ttl: float = CODE_TTL,
        refresh_grace_uses: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lock = threading.Lock()
        self._clients = {client.client_id: client for client in clients}
        self._codes: dict[str, PendingCode] = {}
        self._redeemed: set[str] = set()
        self._refresh: dict[str, RefreshGrant] = {}
        self.code_ttl = code_ttl
        self.refresh_grace_uses = refresh_grace_uses
        self.clock = clock

    def register_client(self, client: RegisteredClient) -> None:
        """Accept ``client`` from now on (replacing one with the same id)."""
        with self._lock:
            self._clients[client.client_id] = client

    def client(self, client_id: str) -> RegisteredClient | None:
        with self._lock:
            return self._clients.get(client_id)

    def issue_code(self, code: str, pending: PendingCode) -> str:
        with self._lock:
            self._codes[code] = pending
        return code

    def redeem_code(self, code: str, client_id: str) -> PendingCode:
        """The code's grant, used up; TokenError when it is unknown, spent, expired or not ours."""
        with self._lock:
            if code in self._redeemed:
                raise TokenError(CODE_REDEEMED)
            pending = self._codes.pop(code, None)
            if pending is None:
                raise TokenError(BAD_CODE)
            self._redeemed.add(code)  # a code is spent by any attempt, right or wrong
        if pending.expires_at <= self.clock():
            raise TokenError(CODE_EXPIRED)
        if pending.client_id != client_id:
            raise TokenError(BAD_CODE)
        return pending

    def issue_refresh_token(self, token: str, grant: RefreshGrant) -> str:
        with self._lock:
            self._refresh[token] = grant
        return token

    def use_refresh_token(self, token: str, client_id: str, *, rotate: bool) -> RefreshGrant:
        """The grant ``token`` stands for; a rotated-out token spends one use of its grace."""
        with self._lock:
            grant = self._refresh.get(token)
            if grant is None or grant.client_id != client_id:
                raise TokenError(BAD_REFRESH)
            if grant.account.faults.revoked:
                raise TokenError(REVOKED)
            if grant.uses_left is not None:
                if grant.uses_left <= 0:
                    del self._refresh[token]
                    raise TokenError(BAD_REFRESH)
                grant.uses_left -= 1
            elif rotate:
                grant.uses_left = self.refresh_grace_uses
            return grant

    def refresh_token_account(self, token: str) -> Account | None:
        """The account a refresh token was issued for, or None."""
        with self._lock:
            grant = self._refresh.get(token)
        return grant.account if grant else None
