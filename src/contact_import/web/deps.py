"""Dependencies of the routes, as ``Annotated`` aliases: the runtime and the signed-in user."""

from __future__ import annotations

import unicodedata
from typing import Annotated

import jwt
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from contact_import.runtime import Runtime
from contact_import.web.problems import Unauthorized

__all__ = ["MAX_USER_ID_LENGTH", "CurrentUser", "Rt", "current_user", "get_runtime"]

MAX_USER_ID_LENGTH = 255
_UNSTORABLE = frozenset({"Cc", "Cs"})  # control characters, lone surrogates

_bearer = HTTPBearer(auto_error=False, description="a Supabase-style HS256 JWT; user id in sub")


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime_holder.get()
    return runtime


Rt = Annotated[Runtime, Depends(get_runtime)]


def current_user(
    rt: Rt, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> str:
    """The ``sub`` of a valid bearer JWT (HS256, JWT_SECRET, audience, expiry required)."""
    secret = rt.settings.jwt_secret
    if credentials is None or not secret:
        raise Unauthorized("sign in: send Authorization: Bearer <JWT>")
    try:
        claims = jwt.decode(
            credentials.credentials,
            secret,
            algorithms=["HS256"],
            audience=rt.settings.jwt_audience,
            options={"require": ["exp", "sub"]},
        )
    except jwt.ExpiredSignatureError:
        raise Unauthorized("your session expired: sign in again") from None
    except jwt.InvalidTokenError:
        raise Unauthorized("the bearer token is not valid") from None
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise Unauthorized("the bearer token names no user")
    if not is_valid_user_id(subject):
        raise Unauthorized(
            f"the bearer token's user id must be 1 to {MAX_USER_ID_LENGTH} characters "
            "without control characters"
        )
    return subject


def is_valid_user_id(subject: str) -> bool:
    """What the tables can store and index: bounded, no control characters or lone
    surrogates (Postgres refuses NUL; a very long id overflows a btree index row)."""
    return len(subject) <= MAX_USER_ID_LENGTH and not any(
        unicodedata.category(ch) in _UNSTORABLE for ch in subject
    )


CurrentUser = Annotated[str, Depends(current_user)]
