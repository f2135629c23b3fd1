"""The one status classifier: the skeleton every provider shares, each provider's body rules,
the token endpoints' rules, and the one httpx boundary (pure; the token endpoint through
httpx's MockTransport: the network is swapped, nothing is patched)."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from contact_import.errors import (
    AccessRevoked,
    AccessTokenExpired,
    ConfigError,
    ContactImportError,
    CursorExpired,
    InsufficientScope,
    MalformedResponse,
    ProviderUnavailable,
    RateLimited,
    RequestRejected,
)
from contact_import.providers.api_source import ApiContactSource
from contact_import.providers.classify import MAX_DETAIL
from contact_import.providers.google import GoogleContactsSource
from contact_import.providers.http import map_httpx_errors
from contact_import.providers.microsoft import MicrosoftContactsSource
from contact_import.providers.oauth import OAuthProvider, exchange_code, refresh_access_token
from contact_import.providers.registry import PROVIDER_SPECS

SOURCES = [spec.source_class for spec in PROVIDER_SPECS]
NOW = datetime(2030, 1, 1, tzinfo=UTC)
TOKEN = "secret-refresh-token"


def answer(status: int, body: object = None, **headers: str) -> httpx.Response:
    content = b"" if body is None else json.dumps(body).encode()
    request = httpx.Request("GET", "https://api.example.test/")
    return httpx.Response(status, content=content, headers=headers, request=request)


def classify(source: type[ApiContactSource], response: httpx.Response) -> ContactImportError:
    return source.error_for_response(response, now=NOW.timestamp())


def google_error(status: str = "", message: str = "", *reasons: str) -> dict[str, object]:
    details = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": r} for r in reasons]
    return {"error": {"code": 400, "status": status, "message": message, "details": details}}


def graph_error(code: str, *inner: str, message: str = "") -> dict[str, object]:
    error: dict[str, object] = {"code": code, "message": message}
    current = error
    for inner_code in inner:
        current["innerError"] = current = {"code": inner_code}
    return {"error": error}


# --- the skeleton, the same for every provider ---------------------------------------------------


@pytest.mark.parametrize("source", SOURCES, ids=lambda s: s.label)
@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (429, RateLimited),
        (500, ProviderUnavailable),
        (502, ProviderUnavailable),
        (503, ProviderUnavailable),
        (504, ProviderUnavailable),
        (401, AccessTokenExpired),
        (403, InsufficientScope),
        (400, RequestRejected),
        (404, RequestRejected),
        (422, RequestRejected),
        (302, MalformedResponse),
        (304, MalformedResponse),
        (101, MalformedResponse),
    ],
)
def test_every_provider_classifies_a_bare_status_alike(
    source: type[ApiContactSource], status: int, expected: type[ContactImportError]
) -> None:
    assert type(classify(source, answer(status))) is expected


@pytest.mark.parametrize("source", SOURCES, ids=lambda s: s.label)
def test_the_messages_name_the_provider_and_the_status(source: type[ApiContactSource]) -> None:
    label, api = source.label, source.api_name
    assert str(classify(source, answer(429))) == f"{label} rate limit reached (HTTP 429)"
    assert str(classify(source, answer(503))) == f"{api} is unavailable (HTTP 503)"
    assert str(classify(source, answer(401))) == f"{label} refused the access token (HTTP 401)"
    assert str(classify(source, answer(403))) == (
        f"{label} did not grant access to your contacts — "
        "reconnect your account and allow contacts access"
    )
    assert str(classify(source, answer(404))) == f"{label} rejected the request (HTTP 404)"
    assert str(classify(source, answer(302))) == f"unexpected HTTP 302 from {api}"


@pytest.mark.parametrize("source", SOURCES, ids=lambda s: s.label)
@pytest.mark.parametrize(
    ("value", "seconds"),
    [("7", 7.0), ("0", 0.0), (format_datetime(NOW + timedelta(seconds=42), usegmt=True), 42.0)],
)
def test_a_rate_limit_carries_the_retry_after(
    source: type[ApiContactSource], value: str, seconds: float
) -> None:
    error = classify(source, answer(429, **{"Retry-After": value}))
    assert isinstance(error, RateLimited)
    assert error.retry_after == seconds


@pytest.mark.parametrize("source", SOURCES, ids=lambda s: s.label)
@pytest.mark.parametrize("body", ["not json", [1, 2], {"error": "a string"}, {"error": None}])
def test_an_unreadable_error_body_costs_only_the_detail(
    source: type[ApiContactSource], body: object
) -> None:
    response = httpx.Response(400, content=str(body).encode(), request=httpx.Request("GET", "/"))
    error = classify(source, response)
    assert type(error) is RequestRejected
    assert str(error) == f"{source.label} rejected the request (HTTP 400)"


@pytest.mark.parametrize(
    ("source", "body", "detail"),
    [
        (GoogleContactsSource, google_error("INVALID_ARGUMENT", "bad field"), "INVALID_ARGUMENT"),
        (MicrosoftContactsSource, graph_error("ErrorInvalidUrlQuery", message="bad"), "Error"),
    ],
    ids=["Google", "Microsoft"],
)
def test_a_rejection_keeps_the_providers_code_and_a_short_message(
    source: type[ApiContactSource], body: dict[str, object], detail: str
) -> None:
    assert f"(HTTP 400) {detail}" in str(classify(source, answer(400, body)))
    long = json.loads(json.dumps(body).replace("bad", "x" * 5000))
    message = str(classify(source, answer(400, long)))
    assert "x" * MAX_DETAIL in message
    assert "x" * (MAX_DETAIL + 1) not in message


# --- each provider's body rules -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (answer(403, google_error("PERMISSION_DENIED", "", "rateLimitExceeded")), RateLimited),
        (answer(403, google_error("", "", "userRateLimitExceeded")), RateLimited),
        (answer(403, google_error("RESOURCE_EXHAUSTED", "", "RATE_LIMIT_EXCEEDED")), RateLimited),
        (answer(403, {"error": {"errors": [{"reason": "quotaExceeded"}]}}), RateLimited),
        (answer(403, google_error("PERMISSION_DENIED", "", "ACCESS_DENIED")), InsufficientScope),
        (answer(400, google_error("FAILED_PRECONDITION", "", "EXPIRED_SYNC_TOKEN")), CursorExpired),
        (answer(400, google_error("INVALID_ARGUMENT", "Sync token is expired.")), CursorExpired),
        (answer(400, google_error("INVALID_ARGUMENT", "Bad pageToken.")), CursorExpired),
        (answer(400, google_error("INVALID_ARGUMENT", "the page token is bad")), CursorExpired),
        (answer(410), CursorExpired),
        (answer(400, google_error("INVALID_ARGUMENT", "personFields")), RequestRejected),
        (answer(404, google_error("NOT_FOUND", "Bad pageToken.")), RequestRejected),
        (answer(509), ProviderUnavailable),  # Graph's throttling status means nothing here
        (answer(400, graph_error("badRequest", "syncStateNotFound")), RequestRejected),
    ],
)
def test_googles_body_rules(response: httpx.Response, expected: type[ContactImportError]) -> None:
    assert type(classify(GoogleContactsSource, response)) is expected


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (answer(509), RateLimited),
        (answer(403, graph_error("accessDenied", "activityLimitReached")), RateLimited),
        (answer(400, graph_error("TOOMANYREQUESTS")), RateLimited),
        (answer(503, graph_error("serviceNotAvailable", "ThrottledRequest")), RateLimited),
        (answer(403, graph_error("ErrorAccessDenied")), InsufficientScope),
        (answer(410), CursorExpired),
        (answer(400, graph_error("badRequest", "SyncStateNotFound")), CursorExpired),
        (answer(400, graph_error("badRequest", "x", "y", "resyncRequired")), CursorExpired),
        (answer(404, graph_error("syncStateInvalid")), CursorExpired),
        (
            answer(401, graph_error("InvalidAuthenticationToken", "syncStateNotFound")),
            AccessTokenExpired,
        ),
        (
            answer(400, graph_error("ErrorInvalidUrlQuery", message="Bad pageToken")),
            RequestRejected,
        ),
        (answer(403, google_error("", "", "rateLimitExceeded")), InsufficientScope),  # Google's
    ],
)
def test_graphs_body_rules(response: httpx.Response, expected: type[ContactImportError]) -> None:
    assert type(classify(MicrosoftContactsSource, response)) is expected


# --- the token endpoints: the same skeleton, their own rules, no bearer rules ---------------------


def token_provider() -> OAuthProvider:
    return OAuthProvider(
        name="microsoft",
        authorize_url="https://login.example.test/authorize",
        token_url="https://login.example.test/token",
        client_id="id",
        client_secret="client-secret",
        scopes=("Contacts.Read",),
    )


def refresh_against(response: httpx.Response) -> ContactImportError:
    transport = httpx.MockTransport(lambda request: response)
    with httpx.Client(transport=transport) as client, pytest.raises(ContactImportError) as caught:
        refresh_access_token(client, token_provider(), TOKEN, now=NOW)
    assert TOKEN not in str(caught.value)
    return caught.value


@pytest.mark.parametrize(
    ("response", "expected", "message"),
    [
        (httpx.Response(429), RateLimited, "Microsoft sign-in rate limit reached (HTTP 429)"),
        (httpx.Response(503), ProviderUnavailable, "Microsoft sign-in is unavailable (HTTP 503)"),
        (httpx.Response(401), RequestRejected, "Microsoft refused the token request (HTTP 401)"),
        (httpx.Response(403), RequestRejected, "Microsoft refused the token request (HTTP 403)"),
        (httpx.Response(410), RequestRejected, "(HTTP 410)"),  # no cursor at a token endpoint
        (httpx.Response(302), MalformedResponse, "unexpected HTTP 302 from Microsoft sign-in"),
        (
            httpx.Response(400, json={"error": "invalid_grant", "error_description": TOKEN}),
            AccessRevoked,
            "Microsoft access was revoked",
        ),
        (
            httpx.Response(401, json={"error": "invalid_client"}),
            ConfigError,
            "check MICROSOFT_CLIENT_ID and MICROSOFT_CLIENT_SECRET",
        ),
        (
            httpx.Response(400, json={"error": "invalid_scope", "error_codes": [70011]}),
            RequestRejected,
            "(HTTP 400 invalid_scope, AADSTS70011)",
        ),
        (
            httpx.Response(400, json={"error": "Not A Code!", "error_description": TOKEN}),
            RequestRejected,
            "Microsoft refused the token request (HTTP 400)",
        ),
    ],
)
def test_token_endpoint_answers(
    response: httpx.Response, expected: type[ContactImportError], message: str
) -> None:
    error = refresh_against(response)
    assert type(error) is expected
    assert message in str(error)


def test_invalid_grant_depends_on_the_request_that_met_it() -> None:
    refused = httpx.Response(400, json={"error": "invalid_grant"})
    transport = httpx.MockTransport(lambda request: refused)
    with httpx.Client(transport=transport) as client, pytest.raises(RequestRejected) as caught:
        exchange_code(
            client, token_provider(), code="c", redirect_uri="https://app.example.test/cb",
            code_verifier="v" * 43, now=NOW,
        )  # fmt: skip
    assert "start connecting your Microsoft account again" in str(caught.value)


# --- the httpx boundary -------------------------------------------------------------------------


REQUEST = httpx.Request("GET", "https://api.example.test/")
BOUNDARY_CASES: list[tuple[Callable[[], Exception], type[ContactImportError], str]] = [
    (lambda: httpx.ReadTimeout("slow", request=REQUEST), ProviderUnavailable, "did not answer"),
    (lambda: httpx.ConnectTimeout("slow", request=REQUEST), ProviderUnavailable, "did not answer"),
    (lambda: httpx.ConnectError("refused", request=REQUEST), ProviderUnavailable, "ConnectError"),
    (lambda: httpx.RemoteProtocolError("eof", request=REQUEST), ProviderUnavailable, "reach"),
    (lambda: httpx.DecodingError("gzip", request=REQUEST), MalformedResponse, "does not decode"),
    (lambda: httpx.InvalidURL("no host"), RequestRejected, "URL is not valid"),
]


@pytest.mark.parametrize(("raise_", "expected", "message"), BOUNDARY_CASES)
def test_httpx_errors_become_ours_at_the_boundary(
    raise_: Callable[[], Exception], expected: type[ContactImportError], message: str
) -> None:
    with pytest.raises(expected, match=message) as caught, map_httpx_errors("Some API"):
        raise raise_()
    assert "Some API" in str(caught.value)
    assert isinstance(caught.value.__cause__, httpx.HTTPError | httpx.InvalidURL)


def test_a_bad_url_is_what_the_caller_says_it_is() -> None:
    expected = pytest.raises(ConfigError, match="the Google sign-in URL is not valid")
    with expected, map_httpx_errors("Google sign-in", bad_url=ConfigError):
        raise httpx.InvalidURL("no host")


def test_a_refused_connection_over_the_real_network_is_unavailable() -> None:
    with socket.socket() as listener:  # a port that was free a moment ago: nothing listens now
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
    refused = pytest.raises(ProviderUnavailable, match="could not reach Some API")
    with httpx.Client() as client, refused, map_httpx_errors("Some API"):
        client.get(f"http://127.0.0.1:{port}/")


def test_errors_raised_inside_that_are_not_httpxs_pass_through() -> None:
    with pytest.raises(KeyError), map_httpx_errors("Some API"):
        raise KeyError("ours")
