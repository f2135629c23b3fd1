"""How the sandbox's two OAuth servers differ on the wire: each provider's error bodies (Google's
``{"error", "error_description"}``, Microsoft's with AADSTS codes, trace and correlation ids), token
shapes and the scopes that grant contacts access."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from starlette.datastructures import QueryParams
from starlette.responses import JSONResponse

__all__ = [
    "BAD_CODE",
    "BAD_REFRESH",
    "BAD_REQUEST",
    "BAD_SECRET",
    "BAD_VERIFIER",
    "CODE_EXPIRED",
    "CODE_REDEEMED",
    "GOOGLE",
    "GOOGLE_SCOPES",
    "MICROSOFT",
    "MICROSOFT_SCOPES",
    "MISSING",
    "NO_STORE",
    "REDIRECT_MISMATCH",
    "REVOKED",
    "UNKNOWN_CLIENT",
    "UNSUPPORTED_GRANT",
    "AuthorizeError",
    "Dialect",
    "Failure",
    "TokenError",
]

GOOGLE_SCOPES = frozenset(
    {
        "https://www.googleapis.com/auth/contacts.readonly",
        "https://www.googleapis.com/auth/contacts",
    }
)
MICROSOFT_SCOPES = frozenset({"contacts.read", "https://graph.microsoft.com/contacts.read"})

# --- errors, in each provider's wire format ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class Failure:
    """One way a token request fails: the RFC 6749 code and each provider's description."""

    status: int
    error: str
    google: str
    aadsts: int
    microsoft: str


UNKNOWN_CLIENT = Failure(
    401, "invalid_client", "The OAuth client was not found.",
    700016, "Application with identifier '{}' was not found in the directory.",
)  # fmt: skip
BAD_SECRET = Failure(
    401, "invalid_client", "Unauthorized", 7000215, "Invalid client secret provided."
)
MISSING = Failure(
    400, "invalid_request", "Missing required parameter: {}",
    900144, "The request body must contain the following parameter: '{}'.",
)  # fmt: skip
BAD_REQUEST = Failure(400, "invalid_request", "{}", 9002313, "Invalid request. {}")
UNSUPPORTED_GRANT = Failure(
    400, "unsupported_grant_type", "Invalid grant_type: {}",
    70003, "The app requested an unsupported grant type '{}'.",
)  # fmt: skip
BAD_CODE = Failure(
    400, "invalid_grant", "Malformed auth code.", 70000, "Provided grant is invalid or malformed."
)
CODE_REDEEMED = Failure(
    400, "invalid_grant", "Bad Request",
    54005, "OAuth2 Authorization code was already redeemed, please retry with a new valid code.",
)  # fmt: skip
CODE_EXPIRED = Failure(
    400, "invalid_grant", "Bad Request",
    70008, "The provided authorization code or refresh token has expired due to inactivity.",
)  # fmt: skip
REDIRECT_MISMATCH = Failure(
    400, "invalid_grant", "Bad Request",
    50011, "The redirect URI specified in the request does not match the one used for the code.",
)  # fmt: skip
BAD_VERIFIER = Failure(
    400, "invalid_grant", "Invalid code verifier.",
    501481, "The Code_Verifier does not match the code_challenge supplied in the authorization "
    "request.",
)  # fmt: skip
BAD_REFRESH = Failure(
    400, "invalid_grant", "Token has been expired or revoked.",
    70000, "Provided grant is invalid or malformed.",
)  # fmt: skip
REVOKED = Failure(
    400, "invalid_grant", "Token has been expired or revoked.",
    50173, "The provided grant has expired due to it being revoked, a fresh auth token is needed.",
)  # fmt: skip


class TokenError(Exception):
    def __init__(self, failure: Failure, detail: str = "") -> None:
        super().__init__(failure.error)
        self.failure = failure
        self.detail = detail


class AuthorizeError(Exception):
    """Answered with a redirect to the client: ``?error=...&error_description=...&state=...``."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(error)
        self.error = error
        self.description = description


class Dialect(Protocol):
    """What differs between the two providers' OAuth servers."""

    provider: str
    rotates_refresh_tokens: bool

    def has_contacts_scope(self, scopes: frozenset[str]) -> bool: ...

    def wants_refresh_token(self, params: QueryParams, scopes: frozenset[str]) -> bool: ...

    def new_token(self, kind: str) -> str: ...

    def token_fields(self, ttl: int) -> dict[str, object]: ...

    def error(self, failure: Failure, detail: str) -> JSONResponse: ...


class Google:
    provider = "google"
    rotates_refresh_tokens = False
    _PREFIXES: Mapping[str, str] = {"code": "4/", "access": "ya29.", "refresh": "1//"}

    def has_contacts_scope(self, scopes: frozenset[str]) -> bool:
        return bool(scopes & GOOGLE_SCOPES)

    def wants_refresh_token(self, params: QueryParams, scopes: frozenset[str]) -> bool:
        return params.get("access_type") == "offline"

    def new_token(self, kind: str) -> str:  # Google's codes and tokens contain "/": quote them
        return self._PREFIXES[kind] + secrets.token_urlsafe(32)

    def token_fields(self, ttl: int) -> dict[str, object]:
        return {}

    def error(self, failure: Failure, detail: str) -> JSONResponse:
        body = {"error": failure.error, "error_description": failure.google.format(detail)}
        return JSONResponse(body, status_code=failure.status, headers=NO_STORE)


class Microsoft:
    provider = "microsoft"
    rotates_refresh_tokens = True

    def has_contacts_scope(self, scopes: frozenset[str]) -> bool:
        return bool({scope.lower() for scope in scopes} & MICROSOFT_SCOPES)

    def wants_refresh_token(self, params: QueryParams, scopes: frozenset[str]) -> bool:
        return "offline_access" in {scope.lower() for scope in scopes}

    def new_token(self, kind: str) -> str:
        return {"code": "M.C5", "access": "EwB", "refresh": "M.R3"}[kind] + secrets.token_urlsafe(
            48
        )

    def token_fields(self, ttl: int) -> dict[str, object]:
        return {"ext_expires_in": ttl}

    def error(self, failure: Failure, detail: str) -> JSONResponse:
        now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        trace, correlation = uuid.uuid4(), uuid.uuid4()
        description = (
            f"AADSTS{failure.aadsts}: {failure.microsoft.format(detail)} Trace ID: {trace} "
            f"Correlation ID: {correlation} Timestamp: {now}"
        )
        body = {
            "error": failure.error,
            "error_description": description,
            "error_codes": [failure.aadsts],
            "timestamp": now,
            "trace_id": str(trace),
            "correlation_id": str(correlation),
            "error_uri": f"https://login.microsoftonline.com/error?code={failure.aadsts}",
        }
        return JSONResponse(body, status_code=failure.status, headers=NO_STORE)


NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


GOOGLE: Dialect = Google()
MICROSOFT: Dialect = Microsoft()
