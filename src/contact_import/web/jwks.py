"""The signing keys at ``JWT_JWKS_URL``, fetched with PyJWT's ``PyJWKClient`` and cached here.

- A fetched key set is used for ``max_age`` seconds (5 minutes) before it is fetched again.
- A ``kid`` the set does not have refetches it once (a key rotated in is picked up by its
  first token, no restart), at most once per ``refetch_interval`` (30 s) whoever asks: tokens
  with made-up kids cannot make us hammer the issuer.
- Each fetch has a timeout (``timeout`` seconds per network operation, no redirects). When it
  fails, the keys fetched before go on serving and the next try waits ``RETRY_AFTER``
  seconds; with no keys yet, ``KeysUnavailable`` (the API answers 503), without trying again
  for ``RETRY_AFTER`` seconds, so requests do not queue up behind a dead issuer.

The cache is ours, not the client's (``cache_jwk_set=False``), so its clock can be injected.
One fetch at a time: a lock is held around it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import jwt
from jwt import PyJWK, PyJWKClient

__all__ = ["RETRY_AFTER", "JwksKeys", "KeysUnavailable"]

log = logging.getLogger("contact_import.web")

RETRY_AFTER = 5.0
# What a failed fetch can raise: PyJWT's own errors (connection, no signing key, an unusable
# set), a body that is not JSON, and socket errors while the body is read.
_FETCH_ERRORS = (jwt.PyJWTError, ValueError, OSError)


class KeysUnavailable(Exception):
    """The JWKS could not be fetched and no keys were fetched before."""


class JwksKeys:
    """The signing keys of one JWKS URL, by ``kid``."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 5.0,
        max_age: float = 300.0,
        refetch_interval: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = PyJWKClient(
            url, cache_jwk_set=False, timeout=timeout, headers={"User-Agent": "contact-import"}
        )
        self._max_age = max_age
        self._refetch_interval = refetch_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[str, PyJWK] | None = None
        self._fetch_after = float("-inf")  # when the set must (or may again) be fetched
        self._refetch_after = float("-inf")  # when an unknown kid may refetch it

    def key_for(self, kid: str) -> PyJWK | None:
        """The key named ``kid``; None if the issuer does not have it (after the refetch)."""
        with self._lock:
            now = self._clock()
            tried = now >= self._fetch_after
            if tried:
                self._fetch(now)
            if self._keys is None:
                raise KeysUnavailable(f"no sign-in keys from {self._client.uri} yet")
            key = self._keys.get(kid)
            if key is None and not tried and now >= self._refetch_after:
                self._refetch_after = now + self._refetch_interval
                self._fetch(now)
                key = self._keys.get(kid)
            return key

    def _fetch(self, now: float) -> None:
        """Fetch the set; when that fails, keep the keys we had."""
        try:
            signing_keys = self._client.get_signing_keys(refresh=True)
        except _FETCH_ERRORS as exc:
            self._fetch_after = now + RETRY_AFTER
            log.warning(
                "could not fetch the sign-in keys (JWT_JWKS_URL): %s; %s",
                type(exc).__name__,
                "keeping the keys fetched before" if self._keys else "no keys yet",
            )
            return
        self._keys = {key.key_id: key for key in signing_keys if key.key_id}
        self._fetch_after = now + self._max_age
