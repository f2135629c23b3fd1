"""Job-scoped links for the status page: an HMAC of the job id and an expiry.

The callback redirects the browser to ``/imports/{job_id}?token=…``; the token lets that one
page (and its progress feed) read that one job for a while, without the user's JWT, which a
browser redirect cannot carry. Guessing another job's id gets nothing without its token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from uuid import UUID

__all__ = ["LINK_TTL_SECONDS", "sign_job_link", "verify_job_link"]

LINK_TTL_SECONDS = 7 * 24 * 3600


def _mac(secret: str, job_id: UUID, expires: int) -> str:
    message = f"job-status:{job_id}:{expires}".encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def sign_job_link(secret: str, job_id: UUID, *, now: float | None = None) -> str:
    expires = int((now if now is not None else time.time()) + LINK_TTL_SECONDS)
    return f"{expires}.{_mac(secret, job_id, expires)}"


def verify_job_link(secret: str, job_id: UUID, token: str, *, now: float | None = None) -> bool:
    expires_text, _, mac = token.partition(".")
    # isascii: str.isdigit accepts "²", which int() refuses; compare_digest refuses
    # non-ASCII str. Neither is something we signed.
    if not (expires_text.isascii() and expires_text.isdigit() and mac.isascii() and mac):
        return False
    expires = int(expires_text)
    if expires < (now if now is not None else time.time()):
        return False
    return hmac.compare_digest(mac, _mac(secret, job_id, expires))
