"""Who is signed in: the ``sub`` of the request's bearer JWT, verified one of two ways.

- ``JWT_JWKS_URL`` (Supabase signing keys, Auth0, Clerk): the token's ``alg`` must be in
  ``JWT_ALGORITHMS`` (asymmetric only: ``none`` and HS* are refused) and be the algorithm of
  the key its ``kid`` names in the JWKS (``web/jwks.py``). So an RSA key never verifies an
  ES256 token, and a public key is never taken for an HMAC secret (an HS256 token "signed
  with the public key"). The JWKS is the only way in: JWT_SECRET verifies nothing then.
- Otherwise (legacy): HS256 with ``JWT_SECRET``, Supabase's legacy JWT secret.

Either way ``exp`` and ``sub`` are required, ``aud`` must be ``JWT_AUDIENCE`` (unless it is
empty), ``iss`` must be ``JWT_ISSUER`` when set, ``azp`` one of ``JWT_AUTHORIZED_PARTIES``
when set, and the user id fits the tables (at most 255 characters, no control characters).
A JWKS that cannot be fetched is a 503, never a 500 and never a hang.
"""

from __future__ import annotations

import time
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import jwt

from contact_import.settings import Settings
from contact_import.web.jwks import RETRY_AFTER, JwksKeys, KeysUnavailable
from contact_import.web.problems import ApiProblem, Unauthorized

__all__ = [
    "MAX_USER_ID_LENGTH",
    "BearerVerifier",
    "SignInUnavailable",
    "checked_user_id",
    "is_valid_user_id",
]

MAX_USER_ID_LENGTH = 255
_UNSTORABLE = frozenset({"Cc", "Cs"})  # control characters, lone surrogates
_INVALID = "the bearer token is not valid"


class SignInUnavailable(ApiProblem):
    """The keys that verify sign-in tokens cannot be fetched: try again shortly."""

    status_code = 503
    headers: ClassVar[dict[str, str]] = {"Retry-After": str(int(RETRY_AFTER))}


@dataclass(frozen=True, slots=True)
class _ClaimRules:
    audience: str | None
    issuer: str | None
    authorized_parties: frozenset[str]


class BearerVerifier:
    """Turns a bearer token into its user id, or raises ``Unauthorized`` (or, when the JWKS
    cannot be fetched, ``SignInUnavailable``)."""

    def __init__(
        self,
        rules: _ClaimRules,
        *,
        jwks: JwksKeys | None = None,
        algorithms: frozenset[str] = frozenset(),
        secret: str | None = None,
    ) -> None:
        self._rules = rules
        self._jwks = jwks
        self._algorithms = algorithms
        self._secret = secret

    @classmethod
    def from_settings(
        cls, settings: Settings, *, clock: Callable[[], float] = time.monotonic
    ) -> BearerVerifier:
        rules = _ClaimRules(
            audience=settings.jwt_audience or None,
            issuer=settings.jwt_issuer,
            authorized_parties=frozenset(settings.jwt_authorized_parties),
        )
        if settings.jwt_jwks_url is None:
            return cls(rules, secret=settings.jwt_secret or None)
        jwks = JwksKeys(settings.jwt_jwks_url, clock=clock)
        return cls(rules, jwks=jwks, algorithms=frozenset(settings.jwt_algorithms))

    def user_id(self, token: str) -> str:
        claims = self._jwks_claims(token) if self._jwks is not None else self._secret_claims(token)
        parties = self._rules.authorized_parties
        if parties and claims.get("azp") not in parties:
            raise Unauthorized("the bearer token was issued to another application (azp)")
        return checked_user_id(claims.get("sub"))

    def _secret_claims(self, token: str) -> Mapping[str, Any]:
        if not self._secret:
            raise Unauthorized("sign in: send Authorization: Bearer <JWT>")
        return self._decode(token, self._secret, "HS256")

    def _jwks_claims(self, token: str) -> Mapping[str, Any]:
        assert self._jwks is not None
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthorized(_INVALID) from None
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in self._algorithms:
            named = f": {alg}" if isinstance(alg, str) and _printable(alg) else ""
            raise Unauthorized(f"the bearer token's algorithm is not accepted{named}")
        if not isinstance(kid, str) or not kid:
            raise Unauthorized("the bearer token names no signing key (kid)")
        try:
            key = self._jwks.key_for(kid)
        except KeysUnavailable:
            raise SignInUnavailable(
                "sign-in is unavailable: its keys cannot be fetched; try again shortly"
            ) from None
        # Pinned: the key's own algorithm (its JWK's alg, or its type's) must be the token's.
        if key is None or key.algorithm_name != alg:
            raise Unauthorized("the bearer token is not signed with a key of its issuer")
        return self._decode(token, key.key, str(alg))

    def _decode(self, token: str, key: Any, algorithm: str) -> Mapping[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=self._rules.audience,
                issuer=self._rules.issuer,
                options={"require": ["exp", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("your session expired: sign in again") from None
        except jwt.PyJWTError:
            raise Unauthorized(_INVALID) from None
        return claims


def checked_user_id(subject: object, *, source: str = "the bearer token's") -> str:
    """``subject`` (a token's ``sub``, or the host app's user id) if the tables can hold it."""
    if not isinstance(subject, str) or not subject:
        raise Unauthorized(f"sign in: {source} user id is missing")
    if not is_valid_user_id(subject):
        raise Unauthorized(
            f"{source} user id must be 1 to {MAX_USER_ID_LENGTH} characters "
            "without control characters"
        )
    return subject


def _printable(text: str) -> bool:
    return len(text) <= 20 and text.isascii() and text.isprintable()


def is_valid_user_id(subject: str) -> bool:
    """What the tables can store and index: bounded, no control characters or lone
    surrogates (Postgres refuses NUL; a very long id overflows a btree index row)."""
    return len(subject) <= MAX_USER_ID_LENGTH and not any(
        unicodedata.category(ch) in _UNSTORABLE for ch in subject
    )
