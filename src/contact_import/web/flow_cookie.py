"""The nonce cookie that binds a started OAuth flow to the browser that started it.

``start`` sets it and the GET callback completes only when it comes back (RFC 9700 §4.7).
One cookie per flow, named after its state, so sign-ins started in two tabs do not overwrite
each other. ``HttpOnly``: no script reads it. ``SameSite=Lax``: the provider's redirect back
is a top-level GET navigation, which carries it. ``Path``: the provider's callback only.
``Secure`` when ``PUBLIC_BASE_URL`` is https (so http://127.0.0.1 works in development).
``Max-Age``: the state's lifetime.
"""

from __future__ import annotations

import hashlib
from urllib.parse import urlsplit

from fastapi import Request, Response

from contact_import.connect import STATE_TTL, StartedFlow, callback_url
from contact_import.settings import Settings

__all__ = [
    "COOKIE_PREFIX",
    "clear_flow_cookie",
    "flow_cookie_name",
    "read_flow_cookie",
    "set_flow_cookie",
]

COOKIE_PREFIX = "contact_import_oauth_"


def flow_cookie_name(state: str) -> str:
    """The cookie of the flow whose state is ``state`` (a hash: the name does not reveal it)."""
    digest = hashlib.sha256(b"flow-cookie:" + state.encode("utf-8", "surrogatepass"))
    return COOKIE_PREFIX + digest.hexdigest()[:16]


def set_flow_cookie(
    response: Response, settings: Settings, provider: str, flow: StartedFlow
) -> None:
    response.set_cookie(
        flow_cookie_name(flow.state),
        flow.browser_nonce,
        max_age=int(STATE_TTL.total_seconds()),
        path=_callback_path(settings, provider),
        secure=_secure(settings),
        httponly=True,
        samesite="lax",
    )


def read_flow_cookie(request: Request, state: str) -> str | None:
    return request.cookies.get(flow_cookie_name(state)) or None


def clear_flow_cookie(response: Response, settings: Settings, provider: str, state: str) -> None:
    response.delete_cookie(
        flow_cookie_name(state),
        path=_callback_path(settings, provider),
        secure=_secure(settings),
        httponly=True,
        samesite="lax",
    )


def _callback_path(settings: Settings, provider: str) -> str:
    return urlsplit(callback_url(settings, provider)).path


def _secure(settings: Settings) -> bool:
    return settings.public_base_url.lower().startswith("https://")
