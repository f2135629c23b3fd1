"""Dependencies of the routes, as ``Annotated`` aliases: the runtime and the signed-in user."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from contact_import.runtime import Runtime
from contact_import.web.bearer import MAX_USER_ID_LENGTH, BearerVerifier, is_valid_user_id
from contact_import.web.problems import Unauthorized

__all__ = [
    "MAX_USER_ID_LENGTH",
    "CurrentUser",
    "Rt",
    "current_user",
    "get_runtime",
    "is_valid_user_id",
]

_bearer = HTTPBearer(
    auto_error=False,
    description="a JWT, user id in sub: HS256 with JWT_SECRET, or signed by a key of JWT_JWKS_URL",
)


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime_holder.get()
    return runtime


Rt = Annotated[Runtime, Depends(get_runtime)]


def current_user(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The ``sub`` of a valid bearer JWT (see ``web.bearer``). An app that mounts the API with
    its own ``current_user`` replaces this dependency (``create_app``)."""
    if credentials is None:
        raise Unauthorized("sign in: send Authorization: Bearer <JWT>")
    verifier: BearerVerifier = request.app.state.bearer
    return verifier.user_id(credentials.credentials)


CurrentUser = Annotated[str, Depends(current_user)]
