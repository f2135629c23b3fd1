"""JWT_JWKS_URL: users' tokens signed with asymmetric keys the issuer publishes as a JWKS.

A real JWKS server on loopback serves keys this test generates (RSA, P-256, Ed25519) and
counts how often it is asked; the API runs in FastAPI's TestClient with an injected clock for
the key cache. Nothing is mocked: PyJWKClient fetches over HTTP.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm
from starlette.exceptions import StarletteDeprecationWarning

from contact_import.runtime import Runtime
from contact_import.settings import Settings
from contact_import.web.app import create_app
from contact_import.web.bearer import BearerVerifier

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

# Sign-in does not depend on the SQL dialect.
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

ISSUER = "https://project-ref.supabase.test/auth/v1"
AUDIENCE = "authenticated"
JWT_SECRET = "status-link-secret-of-the-jwks-tests-0123456789"
JOBS = "/api/v1/contacts/import/jobs"


# --- keys, tokens and the issuer's JWKS server -------------------------------------------


@dataclass(frozen=True)
class SigningKey:
    """A private key of the issuer, the algorithm it signs with, and its public JWK."""

    kid: str
    alg: str
    private: Any
    jwk: dict[str, Any]

    def token(self, sub: str = "alice", **claims: Any) -> str:
        return jwt.encode(_claims(sub, **claims), self.private, self.alg, {"kid": self.kid})


def _claims(sub: str, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {"sub": sub, "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 3600}
    return {k: v for k, v in (base | overrides).items() if v is not None}


def rsa_key(kid: str) -> SigningKey:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = RSAAlgorithm.to_jwk(private.public_key(), as_dict=True)
    return SigningKey(kid, "RS256", private, {**jwk, "kid": kid, "use": "sig", "alg": "RS256"})


def ec_key(kid: str) -> SigningKey:
    private = ec.generate_private_key(ec.SECP256R1())
    jwk = ECAlgorithm.to_jwk(private.public_key(), as_dict=True)
    # No "alg": the key's type (EC, P-256) says ES256, as in Supabase's JWKS.
    return SigningKey(kid, "ES256", private, {**jwk, "kid": kid, "use": "sig"})


def ed_key(kid: str) -> SigningKey:
    private = ed25519.Ed25519PrivateKey.generate()
    jwk = OKPAlgorithm.to_jwk(private.public_key(), as_dict=True)
    return SigningKey(kid, "EdDSA", private, {**jwk, "kid": kid, "use": "sig"})


def forged(header: dict[str, Any], claims: dict[str, Any], secret: bytes | None) -> str:
    """A token assembled by hand: what PyJWT refuses to produce (alg none, HMAC with a PEM)."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    if secret is None:
        return signing_input + "."
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


@dataclass
class JwksServer:
    """The issuer's /.well-known/jwks.json on loopback: the keys it publishes (mutable),
    how many times it was fetched, and an outage switch (answers 503)."""

    keys: list[SigningKey]
    fetches: int = 0
    failing: bool = False
    _server: ThreadingHTTPServer | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_port}/.well-known/jwks.json"

    def answer(self) -> tuple[int, bytes]:
        self.fetches += 1
        if self.failing:
            return 503, b'{"message": "unavailable"}'
        return 200, json.dumps({"keys": [k.jwk for k in self.keys]}).encode()

    @contextmanager
    def running(self) -> Iterator[JwksServer]:
        jwks = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, body = jwks.answer()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()
            thread.join()


class FakeClock:
    """The key cache's clock: moves only when told to."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(scope="module")
def keys() -> dict[str, SigningKey]:
    """The issuer's keys, one per algorithm, and an impostor's RSA key claiming the issuer's
    RSA kid."""
    return {
        "rs": rsa_key("rsa-1"),
        "es": ec_key("ec-1"),
        "ed": ed_key("ed-1"),
        "other": rsa_key("rsa-1"),
    }


@pytest.fixture
def rs(keys: dict[str, SigningKey]) -> SigningKey:
    return keys["rs"]


@pytest.fixture
def issuer(keys: dict[str, SigningKey]) -> Iterator[JwksServer]:
    with JwksServer([keys["rs"], keys["es"], keys["ed"]]).running() as server:
        yield server


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def _settings(settings_for: Any, jwks_url: str, **overrides: Any) -> Settings:
    values = {
        "jwt_jwks_url": jwks_url,
        "jwt_issuer": ISSUER,
        "jwt_secret": JWT_SECRET,
        **overrides,
    }
    return settings_for(**values)  # type: ignore[no-any-return]


@contextmanager
def api(settings: Settings, clock: FakeClock) -> Iterator[tuple[TestClient, Runtime]]:
    with Runtime.build(settings) as rt:
        app = create_app(
            settings, runtime=rt, bearer=BearerVerifier.from_settings(settings, clock=clock)
        )
        with TestClient(app) as client:
            yield client, rt


@pytest.fixture
def client(
    settings_for: Any, issuer: JwksServer, clock: FakeClock
) -> Iterator[tuple[TestClient, Runtime]]:
    with api(_settings(settings_for, issuer.url), clock) as pair:
        yield pair


def _get(client: TestClient, token: str) -> httpx.Response:
    response: httpx.Response = client.get(JOBS, headers={"Authorization": f"Bearer {token}"})
    return response


def _accepts(client: TestClient, token: str) -> None:
    response = _get(client, token)
    assert response.status_code == 200, response.text


def _assert_refused(response: httpx.Response, status: int = 401) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}, body
    assert body["error"], body
    return str(body["error"])


# --- accepted ------------------------------------------------------------------------------


def test_rs256_es256_and_eddsa_tokens_are_accepted_with_one_fetch(
    client: tuple[TestClient, Runtime], issuer: JwksServer, keys: dict[str, SigningKey]
) -> None:
    http, rt = client
    for key in (keys["rs"], keys["es"], keys["ed"]):
        user = f"user-of-{key.alg}"
        job, _ = rt.jobs.create(user, "google")
        response = _get(http, key.token(user))
        assert response.status_code == 200, response.text
        assert [j["id"] for j in response.json()["jobs"]] == [str(job.id)]  # sub is the user
    assert issuer.fetches == 1  # cached: one fetch for every key and request


def test_an_audience_given_as_a_list_is_accepted(
    client: tuple[TestClient, Runtime], rs: SigningKey
) -> None:
    http, _ = client  # Auth0 puts the API and its /userinfo in aud
    _accepts(http, rs.token(aud=["https://api.test", AUDIENCE]))


# --- refused -------------------------------------------------------------------------------


def _pem(key: SigningKey) -> bytes:
    return bytes(
        key.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


REFUSED: dict[str, Any] = {
    "wrong issuer": lambda k: k["rs"].token(iss="https://evil.test/auth/v1"),
    "no issuer": lambda k: k["rs"].token(iss=None),
    "wrong audience": lambda k: k["es"].token(aud="anon"),
    "no audience": lambda k: k["es"].token(aud=None),
    "expired": lambda k: k["ed"].token(exp=int(time.time()) - 60),
    "no expiry": lambda k: k["rs"].token(exp=None),
    "not yet valid": lambda k: k["rs"].token(nbf=int(time.time()) + 600),
    "no sub": lambda k: k["rs"].token(sub=None),
    "sub with a control character": lambda k: k["rs"].token("ali\x00ce"),
    "sub too long": lambda k: k["rs"].token("a" * 256),
    "HS256 signed with the RSA public key": lambda k: forged(
        {"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}, _claims("alice"), _pem(k["rs"])
    ),
    "alg none": lambda k: forged({"alg": "none", "typ": "JWT", "kid": "rsa-1"}, _claims("a"), None),
    "ES256 token naming the RSA key": lambda k: jwt.encode(
        _claims("alice"), k["es"].private, "ES256", {"kid": "rsa-1"}
    ),
    "RS256 signed by another key under a known kid": lambda k: jwt.encode(
        _claims("alice"), k["other"].private, "RS256", {"kid": "rsa-1"}
    ),
    "no kid": lambda k: jwt.encode(_claims("alice"), k["rs"].private, "RS256"),
    "RS512, not allowed": lambda k: jwt.encode(
        _claims("alice"), k["rs"].private, "RS512", {"kid": "rsa-1"}
    ),
    "the legacy HS256 secret": lambda _k: jwt.encode(_claims("alice"), JWT_SECRET, "HS256"),
    "not a JWT": lambda _k: "not.a.jwt",
}


@pytest.mark.parametrize("case", list(REFUSED), ids=list(REFUSED))
def test_refused_tokens_are_401(
    client: tuple[TestClient, Runtime], keys: dict[str, SigningKey], case: str
) -> None:
    http, _ = client
    response = _get(http, REFUSED[case](keys))
    _assert_refused(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"


def test_a_token_from_another_app_is_refused_when_azp_is_checked(
    settings_for: Any, issuer: JwksServer, clock: FakeClock, rs: SigningKey
) -> None:
    settings = _settings(
        settings_for, issuer.url, jwt_audience="", jwt_authorized_parties="https://app.test"
    )
    with api(settings, clock) as (http, _):
        # Clerk's shape: no aud, azp the app's origin.
        _accepts(http, rs.token(aud=None, azp="https://app.test"))
        _assert_refused(_get(http, rs.token(aud=None, azp="https://evil.test")))
        _assert_refused(_get(http, rs.token(aud=None)))
        _assert_refused(_get(http, rs.token(azp="https://app.test")))  # an aud nobody expects


# --- fetching the keys ---------------------------------------------------------------------


def test_an_unknown_kid_refetches_once_then_waits_for_the_interval(
    client: tuple[TestClient, Runtime], issuer: JwksServer, clock: FakeClock, rs: SigningKey
) -> None:
    http, _ = client
    _accepts(http, rs.token())
    assert issuer.fetches == 1
    stranger = rsa_key("not-published")
    _assert_refused(_get(http, stranger.token()))
    assert issuer.fetches == 2  # the one refetch
    for _ in range(3):
        _assert_refused(_get(http, stranger.token()))
    assert issuer.fetches == 2  # rate-limited
    clock.advance(31)
    _assert_refused(_get(http, stranger.token()))
    assert issuer.fetches == 3


def test_key_rotation_is_picked_up_without_a_restart(
    client: tuple[TestClient, Runtime], issuer: JwksServer, clock: FakeClock, rs: SigningKey
) -> None:
    http, _ = client
    _accepts(http, rs.token())
    rotated = ec_key("ec-2")
    issuer.keys = [rs, rotated]  # the new key is published, the old one still verifies
    _accepts(http, rotated.token())
    assert issuer.fetches == 2
    issuer.keys = [rotated]  # the old key is revoked: it stops working at the next refresh
    _accepts(http, rs.token())  # cached for a while
    clock.advance(301)
    _assert_refused(_get(http, rs.token()))
    _accepts(http, rotated.token())
    assert issuer.fetches == 3


def test_an_outage_of_the_jwks_keeps_the_keys_fetched_before(
    client: tuple[TestClient, Runtime], issuer: JwksServer, clock: FakeClock, rs: SigningKey
) -> None:
    http, _ = client
    _accepts(http, rs.token())
    issuer.failing = True
    clock.advance(301)
    _accepts(http, rs.token())  # stale keys serve
    assert issuer.fetches == 2
    _accepts(http, rs.token())
    assert issuer.fetches == 2  # not asked again at once


def test_a_jwks_that_is_down_from_the_start_is_a_503(
    settings_for: Any, clock: FakeClock, keys: dict[str, SigningKey]
) -> None:
    rs, es = keys["rs"], keys["es"]
    issuer = JwksServer([rs, es], failing=True)
    with issuer.running(), api(_settings(settings_for, issuer.url), clock) as (http, _):
        response = _get(http, rs.token())
        assert "keys cannot be fetched" in _assert_refused(response, 503)
        assert response.headers["retry-after"] == "5"
        _assert_refused(_get(http, es.token()), 503)
        assert issuer.fetches == 1  # requests do not queue up behind a dead issuer
        issuer.failing = False
        clock.advance(5)
        _accepts(http, rs.token())
        assert issuer.fetches == 2


def test_a_closed_port_is_a_503(settings_for: Any, clock: FakeClock, rs: SigningKey) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/.well-known/jwks.json"  # nothing listens there now
    with api(_settings(settings_for, url), clock) as (http, _):
        _assert_refused(_get(http, rs.token()), 503)


@pytest.mark.slow
def test_a_jwks_that_never_answers_is_a_503_after_the_timeout(
    settings_for: Any, clock: FakeClock, rs: SigningKey
) -> None:
    with socket.socket() as silent:  # accepts connections (the backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/.well-known/jwks.json"
        with api(_settings(settings_for, url), clock) as (http, _):
            _assert_refused(_get(http, rs.token()), 503)
