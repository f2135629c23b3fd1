"""The HTTP API through FastAPI's TestClient (and a real uvicorn server for concurrency):
cron authorization, user authorization, the OAuth flow over HTTP, pagination, CORS.

Real database, the sandbox over loopback; nothing is mocked or patched.
"""

from __future__ import annotations

import ast
import base64
import inspect
import json
import re
import threading
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit
from uuid import UUID, uuid4

import httpx
import jwt
import pytest
from sqlalchemy import func, select
from starlette.exceptions import StarletteDeprecationWarning

from contact_import.domain.job import JobStatus
from contact_import.runtime import Runtime
from contact_import.sandbox.accounts import Faults
from contact_import.sandbox.server import RunningSandbox
from contact_import.settings import Settings
from contact_import.store.schema import contacts, jobs, provider_grants
from contact_import.web.app import create_app
from contact_import.web.problems import Unauthorized
from contact_import.web.routes import cron as cron_module
from tests.helpers import SettingsFor, assert_consistent, drain, live_server, queue_import

with warnings.catch_warnings():
    # Starlette 1.x asks for httpx2 behind its TestClient; with httpx it works the same.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    # "as": re-exported (mypy) for the tests that import it from here
    from fastapi.testclient import TestClient as TestClient  # noqa: PLC0414

# Both at least 32 bytes: PyJWT warns about shorter HMAC keys (and warnings are errors here).
CRON_SECRET = "cron-secret-for-the-api-tests-0123456789"
JWT_SECRET = "jwt-secret-for-the-api-tests-0123456789abcdef"
OTHER_SECRET = "not-the-jwt-secret-of-this-deployment-0123456789"
CRON = "/api/cron/process-imports"
API = "/api/v1/contacts/import"

# Authorization logic does not depend on the SQL dialect: those tests run on SQLite only.
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


# --- helpers -------------------------------------------------------------------------------


def make_jwt(
    sub: str | None = "alice",
    *,
    secret: str = JWT_SECRET,
    aud: str | None = "authenticated",
    expires_in: float | None = 3600,
    algorithm: str = "HS256",
) -> str:
    claims: dict[str, Any] = {"iat": int(time.time())}
    if sub is not None:
        claims["sub"] = sub
    if aud is not None:
        claims["aud"] = aud
    if expires_in is not None:
        claims["exp"] = int(time.time() + expires_in)
    return jwt.encode(claims, secret, algorithm=algorithm)


def as_user(user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_jwt(user)}"}


def assert_error(response: httpx.Response, status: int) -> str:
    """A 4xx answered as JSON ``{"error": "<something readable>"}``; returns the message."""
    assert 400 <= status < 500
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert set(body) == {"error"}, body
    assert isinstance(body["error"], str)
    assert body["error"].strip()
    return str(body["error"])


def without_id(message: str, job_id: UUID) -> str:
    return message.replace(str(job_id), "<id>")


def count_rows(rt: Runtime, table: Any) -> int:
    with rt.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def assert_cron_body(body: dict[str, Any]) -> None:
    """The original's JSON: message, processed, failed, job_ids.{processed,failed,continuing}."""
    assert {"message", "processed", "failed", "job_ids"} <= set(body), body
    assert isinstance(body["message"], str)
    assert isinstance(body["processed"], int)
    assert isinstance(body["failed"], int)
    ids = body["job_ids"]
    assert {"processed", "failed", "continuing"} <= set(ids), ids
    for name, values in ids.items():
        assert isinstance(values, list), name
        assert all(isinstance(UUID(v), UUID) for v in values)
    assert body["processed"] == len(ids["processed"])
    assert body["failed"] == len(ids["failed"])


@pytest.fixture
def api_settings(settings_for: SettingsFor) -> Settings:
    # The callback only queues its job (no instant import): these tests act on queued jobs.
    return settings_for(cron_secret=CRON_SECRET, jwt_secret=JWT_SECRET, callback_budget_seconds=0)


@pytest.fixture
def rt(api_settings: Settings) -> Iterator[Runtime]:
    with Runtime.build(api_settings) as runtime:
        yield runtime


@contextmanager
def client_for(rt: Runtime) -> Iterator[TestClient]:
    app = create_app(rt.settings, runtime=rt)
    with TestClient(app, follow_redirects=False) as client:
        yield client


@pytest.fixture
def client(rt: Runtime) -> Iterator[TestClient]:
    with client_for(rt) as c:
        yield c


def authorize_on_sandbox(
    client: TestClient, user: str, provider: str = "google", hint: str = "contacts:250,seed:3"
) -> str:
    """Start as ``user`` and let the sandbox approve: the callback path+query it redirects to."""
    response = client.post(f"{API}/{provider}/start", headers=as_user(user))
    assert response.status_code == 200, response.text
    auth_url = response.json()["auth_url"]
    query = parse_qs(urlsplit(auth_url).query)
    assert query["state"][0]
    assert query["code_challenge_method"] == ["S256"]
    approved = httpx.get(f"{auth_url}&login_hint={quote(hint)}", follow_redirects=False)
    assert approved.status_code == 302, approved.text
    location = urlsplit(approved.headers["location"])
    assert location.path == f"{API}/{provider}/callback"
    return f"{location.path}?{location.query}"


def connect(
    client: TestClient, user: str, provider: str = "google", hint: str = "contacts:250,seed:3"
) -> tuple[UUID, str]:
    """The whole browser round trip: (the new job's id, the status page link)."""
    callback = authorize_on_sandbox(client, user, provider, hint)
    response = client.get(callback)
    assert response.status_code == 303, response.text
    link = response.headers["location"]
    match = re.fullmatch(r"/imports/([0-9a-f-]{36})\?token=([\w.-]+)", link)
    assert match, link
    return UUID(match.group(1)), link


# --- the cron route: who may run a tick ----------------------------------------------------


PLACES = ["bearer", "x-cron-secret", "key"]


def cron_request(
    client: TestClient, method: str, place: str | None, secret: str, **headers: str
) -> httpx.Response:
    params: dict[str, str] = {}
    if place == "bearer":
        headers["Authorization"] = f"Bearer {secret}"
    elif place == "x-cron-secret":
        headers["x-cron-secret"] = secret
    elif place == "key":
        params["key"] = secret
    # Starlette types its TestClient against httpx2; without it mypy sees Any.
    response: httpx.Response = client.request(method, CRON, headers=headers, params=params)
    return response


@pytest.fixture
def queued(rt: Runtime, sandbox: RunningSandbox) -> UUID:
    """A small queued job: a tick that really ran would have completed it."""
    return queue_import(rt, sandbox, "cron-user", size=20, seed=9).id


def assert_untouched(rt: Runtime, job_id: UUID) -> None:
    job = rt.jobs.get(job_id)
    assert job.status is JobStatus.FETCHING
    assert job.attempts == 0
    assert job.processed_contacts == 0


@sqlite_only
@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("place", PLACES)
def test_cron_accepts_the_secret_in_each_place(
    client: TestClient, rt: Runtime, queued: UUID, method: str, place: str
) -> None:
    response = cron_request(client, method, place, CRON_SECRET)
    assert response.status_code == 200, response.text
    body = response.json()
    assert_cron_body(body)
    assert body["message"] == "Processing complete"
    assert body["job_ids"]["processed"] == [str(queued)]
    assert body["processed"] == 1
    assert body["failed"] == 0
    assert rt.jobs.get(queued).status is JobStatus.COMPLETED
    again = cron_request(client, method, place, CRON_SECRET)
    assert again.status_code == 200
    assert again.json()["message"] == "No pending jobs"
    assert again.json()["processed"] == 0


@sqlite_only
@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("place", PLACES)
@pytest.mark.parametrize(
    "secret",
    [
        "wrong",
        CRON_SECRET.upper(),
        CRON_SECRET[:-1],
        CRON_SECRET + "x",
        CRON_SECRET[:8],
        "x" * len(CRON_SECRET),
        f" {CRON_SECRET}x ",
    ],
    ids=["wrong", "upper", "prefix", "suffix", "short-prefix", "same-length", "padded"],
)
def test_cron_refuses_a_wrong_or_near_miss_secret(  # noqa: PLR0917 (fixtures, params)
    client: TestClient, rt: Runtime, queued: UUID, method: str, place: str, secret: str
) -> None:
    assert_error(cron_request(client, method, place, secret), 401)
    assert_untouched(rt, queued)


@sqlite_only
@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize(
    "headers",
    [
        {"x-vercel-cron": "1"},
        {"x-vercel-cron-schedule": "* * * * *"},
        {"User-Agent": "vercel-cron/1.0"},
        {
            "x-vercel-cron": "1",
            "x-vercel-cron-schedule": "* * * * *",
            "User-Agent": "vercel-cron/1.0",
        },
        {},
        {"Authorization": "Bearer"},
        {"Authorization": f"Basic {CRON_SECRET}"},
        {"Authorization": f"Token {CRON_SECRET}"},
        {"Authorization": f"Bearer{CRON_SECRET}"},
        {"Authorization": CRON_SECRET},
        {"x-cron-secret": f"Bearer {CRON_SECRET}"},
        {"x-cron-secret": ""},
    ],
    ids=[
        "x-vercel-cron",
        "x-vercel-cron-schedule",
        "vercel-user-agent",
        "all-vercel-headers",
        "nothing",
        "empty-bearer",
        "basic-scheme",
        "token-scheme",
        "no-space",
        "no-scheme",
        "bearer-in-x-cron-secret",
        "empty-x-cron-secret",
    ],
)
def test_cron_refuses_headers_that_prove_nothing(
    client: TestClient, rt: Runtime, queued: UUID, method: str, headers: dict[str, str]
) -> None:
    assert_error(client.request(method, CRON, headers=headers), 401)
    assert_untouched(rt, queued)


@sqlite_only
@pytest.mark.parametrize(
    "params",
    [{"KEY": CRON_SECRET}, {"secret": CRON_SECRET}, {"key": ""}, {"key": "é" + CRON_SECRET[1:]}],
)
def test_cron_refuses_other_query_parameters(
    client: TestClient, rt: Runtime, queued: UUID, params: dict[str, str]
) -> None:
    assert_error(client.get(CRON, params=params), 401)
    assert_untouched(rt, queued)


@sqlite_only
@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("cron_secret", [None, ""])
def test_cron_without_a_configured_secret_refuses_everyone(
    settings_for: SettingsFor,
    sandbox: RunningSandbox,
    method: str,
    cron_secret: str | None,
) -> None:
    settings = settings_for(cron_secret=cron_secret, jwt_secret=JWT_SECRET)
    with Runtime.build(settings) as rt, client_for(rt) as client:
        job_id = queue_import(rt, sandbox, "cron-user", size=20, seed=9).id
        attempts = [
            *(
                (place, value)
                for place in PLACES
                for value in (CRON_SECRET, "None", "null", "undefined")
            ),
            ("bearer", " "),
            (None, ""),
        ]
        for place, value in attempts:
            response = cron_request(client, method, place, value, **{"x-vercel-cron": "1"})
            assert_error(response, 401)
        assert_untouched(rt, job_id)


@sqlite_only
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_cron_answers_on_the_exact_path_without_a_redirect(
    client: TestClient, queued: UUID, method: str
) -> None:
    response = client.request(method, CRON, params={"key": CRON_SECRET})
    assert response.status_code == 200, response.text
    assert not response.history
    assert "location" not in response.headers


@sqlite_only
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_cron_with_a_trailing_slash_does_not_redirect_into_a_tick(
    client: TestClient, rt: Runtime, queued: UUID, method: str
) -> None:
    response = client.request(method, f"{CRON}/", params={"key": CRON_SECRET})
    assert not 300 <= response.status_code < 400, (response.status_code, response.headers)
    assert "location" not in response.headers
    assert_error(response, 404)
    assert_untouched(rt, queued)


def test_cron_secret_check_is_constant_time_and_closed_by_default() -> None:
    check = cron_module.check_cron_secret
    # Right secret in each place, alone.
    check(CRON_SECRET, f"Bearer {CRON_SECRET}", None, None)
    check(CRON_SECRET, f"bearer   {CRON_SECRET}  ", None, None)
    check(CRON_SECRET, None, CRON_SECRET, None)
    check(CRON_SECRET, None, None, CRON_SECRET)
    # A wrong value next to the right one does not hide it.
    check(CRON_SECRET, "Bearer nope", CRON_SECRET, "nope")
    refused: list[tuple[str | None, str | None, str | None, str | None]] = [
        (None, f"Bearer {CRON_SECRET}", CRON_SECRET, CRON_SECRET),
        ("", "Bearer ", "", ""),
        (CRON_SECRET, None, None, None),
        (CRON_SECRET, f"Bearer {CRON_SECRET[:-1]}", CRON_SECRET.upper(), CRON_SECRET + " "),
        (CRON_SECRET, None, None, "é" * 5),  # str compare_digest would raise TypeError here
        ("ünïcode-secret-0123456789", None, None, "ünïcode-secret-012345678"),
    ]
    for expected, authorization, header, key in refused:
        with pytest.raises(Unauthorized):
            check(expected, authorization, header, key)
    check("ünïcode-secret-0123456789", None, None, "ünïcode-secret-0123456789")

    # The comparison itself: hmac.compare_digest, and no ==/!=/in on anything secret.
    tree = ast.parse(inspect.getsource(cron_module))
    calls = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "compare_digest"
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "hmac"
    ]
    assert calls, "the cron route must compare secrets with hmac.compare_digest"
    secret_names = {"expected", "presented", "p", "key", "x_cron_secret", "secret", "cron_secret"}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Compare):
            continue
        names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
        names |= {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)}
        assert not names & secret_names, f"non-constant-time comparison: {ast.unparse(node)}"


# --- two cron calls at once ---------------------------------------------------------------


def test_concurrent_cron_calls_never_process_one_job_twice(
    settings_for: SettingsFor,
    sandbox: RunningSandbox,
) -> None:
    settings = settings_for(
        cron_secret=CRON_SECRET,
        jwt_secret=JWT_SECRET,
        page_size=100,
        tick_budget_seconds=0.3,
        tick_max_jobs=2,
    )
    # Five pages of at least 80 ms each cannot fit one 0.3 s tick (a tick overruns its budget
    # by one page at most), and ten jobs are more than four calls claim at once.
    callers, size = 4, 500
    with Runtime.build(settings) as rt, live_server(create_app(settings, runtime=rt)) as base:
        queued = [
            queue_import(rt, sandbox, f"user-{i}", size=size, seed=i, faults=Faults(latency_ms=80))
            for i in range(10)
        ]
        expected = {str(j.id) for j in queued}
        ways: list[dict[str, Any]] = [
            {"method": "GET", "headers": {"Authorization": f"Bearer {CRON_SECRET}"}},
            {"method": "POST", "headers": {"x-cron-secret": CRON_SECRET}},
            {"method": "GET", "params": {"key": CRON_SECRET}},
            {"method": "POST", "headers": {"Authorization": f"Bearer {CRON_SECRET}"}},
        ]
        barrier = threading.Barrier(callers)

        def call(way: dict[str, Any]) -> dict[str, Any]:
            with httpx.Client(base_url=base, timeout=60) as http:
                barrier.wait(timeout=30)
                response = http.request(url=CRON, **way)
            assert response.status_code == 200, response.text
            body: dict[str, Any] = response.json()
            assert_cron_body(body)
            return body

        completed: Counter[str] = Counter()
        rounds = busiest = 0
        with ThreadPoolExecutor(callers) as pool:
            while set(completed) != expected:
                rounds += 1
                assert rounds <= 40, f"not done after 40 rounds: {completed}"
                bodies = list(pool.map(call, ways))
                seen = Counter(
                    job_id
                    for body in bodies
                    for bucket in body["job_ids"].values()
                    for job_id in bucket
                )
                twice = {job_id: n for job_id, n in seen.items() if n > 1}
                assert not twice, f"round {rounds}: claimed by two calls at once: {twice}"
                assert set(seen) <= expected
                busiest = max(busiest, sum(1 for b in bodies if any(b["job_ids"].values())))
                for body in bodies:
                    assert body["failed"] == 0, body
                    completed.update(body["job_ids"]["processed"])
        assert rounds > 1, "the budget should have made at least one job continue"
        assert busiest >= 2, "the calls should have overlapped on the queue"
        assert completed == Counter(expected), "each job completes exactly once"
        for job in queued:
            done = rt.jobs.get(job.id)
            assert_consistent(rt.engine, done, size)


# --- user authentication --------------------------------------------------------------------


USER_ROUTES = [
    ("POST", f"{API}/google/start"),
    ("GET", f"{API}/status/{uuid4()}"),
    ("GET", f"{API}/jobs"),
    ("POST", f"{API}/jobs/{uuid4()}/cancel"),
    ("POST", f"{API}/jobs/{uuid4()}/retry"),
    ("GET", "/api/v1/contacts"),
]

BAD_CREDENTIALS = {
    "none": None,
    "garbage": "Bearer not-a-jwt",
    "empty-bearer": "Bearer ",
    "basic-scheme": "Basic " + base64.b64encode(b"alice:pw").decode(),
    "expired": "Bearer " + make_jwt(expires_in=-120),
    "wrong-audience": "Bearer " + make_jwt(aud="someone-else"),
    "no-audience": "Bearer " + make_jwt(aud=None),
    "wrong-secret": "Bearer " + make_jwt(secret=OTHER_SECRET),
    "no-exp": "Bearer " + make_jwt(expires_in=None),
    "no-sub": "Bearer " + make_jwt(sub=None),
    "empty-sub": "Bearer " + make_jwt(sub=""),
    "hs512": "Bearer " + make_jwt(algorithm="HS512", secret=JWT_SECRET + "x" * 40),
    "alg-none": "Bearer "
    + ".".join(
        base64.urlsafe_b64encode(json.dumps(part).encode()).decode().rstrip("=")
        for part in (
            {"alg": "none", "typ": "JWT"},
            {"sub": "alice", "aud": "authenticated", "exp": int(time.time()) + 3600},
        )
    )
    + ".",
    "cron-secret": f"Bearer {CRON_SECRET}",
}


@sqlite_only
@pytest.mark.parametrize("credentials", list(BAD_CREDENTIALS.values()), ids=list(BAD_CREDENTIALS))
def test_user_routes_refuse_missing_or_invalid_jwts(
    client: TestClient, credentials: str | None
) -> None:
    headers = {} if credentials is None else {"Authorization": credentials}
    for method, path in USER_ROUTES:
        response = client.request(method, path, headers=headers)
        assert_error(response, 401)
        assert response.headers.get("www-authenticate") == "Bearer", (method, path)


@sqlite_only
def test_the_jwt_audience_is_configurable(
    settings_for: SettingsFor,
) -> None:
    settings = settings_for(jwt_secret=JWT_SECRET, jwt_audience="my-app")
    with Runtime.build(settings) as rt, client_for(rt) as client:
        default_aud = {"Authorization": f"Bearer {make_jwt('alice')}"}
        assert_error(client.get(f"{API}/jobs", headers=default_aud), 401)
        mine = {"Authorization": f"Bearer {make_jwt('alice', aud='my-app')}"}
        response = client.get(f"{API}/jobs", headers=mine)
        assert response.status_code == 200, response.text
        assert response.json() == {"jobs": []}


@sqlite_only
def test_without_a_jwt_secret_no_token_is_accepted(
    settings_for: SettingsFor,
) -> None:
    with Runtime.build(settings_for(jwt_secret=None)) as rt, client_for(rt) as client:
        assert_error(client.get(f"{API}/jobs", headers=as_user("alice")), 401)


# --- the OAuth flow over HTTP, and what a user can do with jobs ---------------------------


def test_full_flow_over_http_ends_in_a_completed_import(client: TestClient, rt: Runtime) -> None:
    job_id, link = connect(client, "alice", hint="contacts:250,seed:3")
    queued = client.get(f"{API}/status/{job_id}", headers=as_user("alice"))
    assert queued.status_code == 200, queued.text
    assert queued.json()["status"] == "fetching"
    assert queued.json()["provider"] == "google"

    drain(rt)
    done = rt.jobs.get(job_id)
    assert_consistent(rt.engine, done, 250)
    response = client.get(f"{API}/status/{job_id}", headers=as_user("alice"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == str(job_id)
    assert body["status"] == "completed"
    assert body["error_message"] is None
    assert body["completed_at"] is not None
    for name in (
        "total_contacts",
        "processed_contacts",
        "created_contacts",
        "updated_contacts",
        "imported_contacts",
        "skipped_contacts",
        "failed_contacts",
        "attempts",
    ):
        assert body[name] == getattr(done, name), name
    assert body["processed_contacts"] == 250

    listed = client.get(f"{API}/jobs", headers=as_user("alice")).json()["jobs"]
    assert [j["id"] for j in listed] == [str(job_id)]

    page = client.get(link)
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    path, _, query = link.partition("?")
    progress = client.get(f"{path}/progress?{query}")
    assert progress.status_code == 200, progress.text
    assert progress.json()["status"] == "completed"
    assert progress.json()["processed_contacts"] == 250


def test_other_users_get_404_for_someone_elses_job(client: TestClient, rt: Runtime) -> None:
    a_job, a_link = connect(client, "alice", hint="contacts:30,seed:1")
    b_job, b_link = connect(client, "bob", hint="contacts:30,seed:2")
    unknown = uuid4()
    bob = as_user("bob")
    routes = [
        ("GET", f"{API}/status/{{}}"),
        ("POST", f"{API}/jobs/{{}}/cancel"),
        ("POST", f"{API}/jobs/{{}}/retry"),
    ]
    for method, template in routes:
        theirs = client.request(method, template.format(a_job), headers=bob)
        nobodys = client.request(method, template.format(unknown), headers=bob)
        message = assert_error(theirs, 404)
        assert without_id(message, a_job) == without_id(assert_error(nobodys, 404), unknown)
        assert str(a_job) not in json.dumps(dict(theirs.headers))
    still = rt.jobs.get(a_job)
    assert still.status is JobStatus.FETCHING
    assert not still.cancel_requested

    listed = client.get(f"{API}/jobs", headers=bob).json()["jobs"]
    assert [j["id"] for j in listed] == [str(b_job)]

    # The status page: only the signed link of that very job opens it.
    b_token = b_link.partition("?token=")[2]
    a_token = a_link.partition("?token=")[2]
    forged = f"{a_token.partition('.')[0]}.{'A' * 43}"
    for page in (f"/imports/{a_job}", f"/imports/{a_job}/progress"):
        for token in (b_token, forged, "", "9999999999.x"):
            response = client.get(page, params={"token": token})
            message = assert_error(response, 404)
            unknown_page = page.replace(str(a_job), str(unknown))
            nobodys = client.get(unknown_page, params={"token": token})
            assert without_id(message, a_job) == without_id(assert_error(nobodys, 404), unknown)
        # No token at all (a JWT does not open the page): the same 404 as an unknown id.
        bare = client.get(page, headers=bob)
        assert_error(bare, 404)
        bare_unknown = client.get(page.replace(str(a_job), str(unknown)), headers=bob)
        assert_error(bare_unknown, 404)
        assert without_id(bare.json()["error"], a_job) == without_id(
            bare_unknown.json()["error"], unknown
        )
    assert client.get(a_link).status_code == 200
    assert client.get(f"/imports/{a_job}", params={"token": a_token}).status_code == 200


def test_cancel_and_retry(client: TestClient, rt: Runtime) -> None:
    job_id, _ = connect(client, "carol", hint="contacts:40,seed:5")
    carol = as_user("carol")
    retry_queued = client.post(f"{API}/jobs/{job_id}/retry", headers=carol)
    assert "fetching" in assert_error(retry_queued, 409)

    cancelled = client.post(f"{API}/jobs/{job_id}/cancel", headers=carol)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert_error(client.post(f"{API}/jobs/{job_id}/cancel", headers=carol), 409)

    retried = client.post(f"{API}/jobs/{job_id}/retry", headers=carol)
    assert retried.status_code == 200, retried.text
    assert retried.json()["status"] == "fetching"
    assert_error(client.post(f"{API}/jobs/{job_id}/retry", headers=carol), 409)

    # A job a worker holds: retry is refused, cancel is a request the worker honours later.
    (claimed,) = rt.jobs.claim("test-worker", 1).jobs
    assert claimed.id == job_id
    assert_error(client.post(f"{API}/jobs/{job_id}/retry", headers=carol), 409)
    flagged = client.post(f"{API}/jobs/{job_id}/cancel", headers=carol)
    assert flagged.status_code == 200, flagged.text
    assert flagged.json()["status"] == "processing"
    assert flagged.json()["cancel_requested"] is True


def test_start_with_an_unknown_provider_is_404(client: TestClient, rt: Runtime) -> None:
    for provider in ("yahoo", "googl", "icloud"):
        response = client.post(f"{API}/{provider}/start", headers=as_user("alice"))
        assert provider in assert_error(response, 404)
    response = client.get(f"{API}/yahoo/callback", params={"code": "c", "state": "s"})
    assert_error(response, 404)
    assert count_rows(rt, jobs) == 0


def test_a_bad_or_reused_callback_is_400_and_creates_nothing(
    client: TestClient, rt: Runtime
) -> None:
    callback = authorize_on_sandbox(client, "dave", hint="contacts:10,seed:1")
    path, _, query = callback.partition("?")
    params = {k: v[0] for k, v in parse_qs(query).items()}
    bad = [
        params | {"state": "x" * 43},
        params | {"state": ""},
        {"code": params["code"]},
        {"state": params["state"]},
        {},
        params | {"error": "access_denied"},
    ]
    for query_params in bad:
        assert_error(client.get(path, params=query_params), 400)
    microsoft = client.get(f"{API}/microsoft/callback", params=params)
    assert_error(microsoft, 400)
    assert count_rows(rt, jobs) == count_rows(rt, provider_grants) == 0

    # The state still works once (none of the above consumed it) ...
    first = client.get(callback)
    assert first.status_code == 303, first.text
    # ... and never twice.
    assert_error(client.get(callback), 400)
    assert count_rows(rt, jobs) == count_rows(rt, provider_grants) == 1


# --- the contacts list ----------------------------------------------------------------------


def test_contacts_are_the_callers_own_and_pages_cover_them_exactly_once(
    client: TestClient, rt: Runtime, sandbox: RunningSandbox
) -> None:
    queue_import(rt, sandbox, "alice", size=320, seed=11)
    queue_import(rt, sandbox, "bob", size=60, seed=11)  # the same book: same emails, other user
    drain(rt)

    def stored(user: str) -> set[str]:
        with rt.engine.connect() as conn:
            rows = conn.execute(select(contacts.c.id).where(contacts.c.user_id == user))
            return {str(r.id) for r in rows}

    def all_pages(user: str, limit: int) -> list[list[dict[str, Any]]]:
        pages: list[list[dict[str, Any]]] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": limit} | ({"cursor": cursor} if cursor else {})
            response = client.get("/api/v1/contacts", params=params, headers=as_user(user))
            assert response.status_code == 200, response.text
            body = response.json()
            assert set(body) == {"contacts", "next_cursor"}
            pages.append(body["contacts"])
            cursor = body["next_cursor"]
            if cursor is None:
                return pages
            assert len(pages) < 100

    alice, bob = stored("alice"), stored("bob")
    assert len(alice) > 200
    assert bob
    pages = all_pages("alice", 100)
    assert [len(p) for p in pages[:-1]] == [100] * (len(pages) - 1)
    assert 0 < len(pages[-1]) <= 100
    ids = [c["id"] for page in pages for c in page]
    assert len(ids) == len(set(ids)) == len(alice)
    assert set(ids) == alice
    for contact in (c for page in pages for c in page):
        assert isinstance(contact["display_name"], str)
        assert all(isinstance(e, str) for e in contact["emails"])
        assert all(isinstance(p, str) for p in contact["phones"])
    bobs = [c["id"] for page in all_pages("bob", 7) for c in page]
    assert len(bobs) == len(set(bobs))
    assert set(bobs) == bob
    assert not set(bobs) & alice
    nobody = client.get("/api/v1/contacts", headers=as_user("nobody"))
    assert nobody.json() == {"contacts": [], "next_cursor": None}


@sqlite_only
def test_a_bad_cursor_or_limit_is_a_json_4xx(client: TestClient) -> None:
    def b64(value: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    cursors = [
        "not-a-cursor",
        "",
        "%%%",
        b64([1]),
        b64({"a": 1, "b": 2}),
        b64([None, None]),
        b64(["2024-01-01T00:00:00", "not-a-uuid"]),
        b64([["x"], 1]),
        base64.urlsafe_b64encode(b"\xff\xfe\x00").decode(),
    ]
    for cursor in cursors:
        response = client.get("/api/v1/contacts", params={"cursor": cursor}, headers=as_user("a"))
        assert_error(response, 400)
    for limit in ("0", "1001", "-1", "ten"):
        response = client.get("/api/v1/contacts", params={"limit": limit}, headers=as_user("a"))
        assert_error(response, 422)


# --- CORS -----------------------------------------------------------------------------------


def _preflight(client: TestClient, origin: str) -> httpx.Response:
    response: httpx.Response = client.options(
        f"{API}/status/{uuid4()}",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    return response


@sqlite_only
def test_cors_allows_the_configured_origin_only(settings_for: SettingsFor) -> None:
    settings = settings_for(jwt_secret=JWT_SECRET, cors_origins=["https://app.example"])
    with Runtime.build(settings) as rt, client_for(rt) as client:
        allowed = _preflight(client, "https://app.example")
        assert allowed.status_code == 200, allowed.text
        assert allowed.headers["access-control-allow-origin"] == "https://app.example"
        assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
        assert "GET" in allowed.headers["access-control-allow-methods"]

        other = _preflight(client, "https://evil.example")
        assert "access-control-allow-origin" not in other.headers
        assert other.status_code >= 400

        unknown = uuid4()
        for origin, allowed_origin in (
            ("https://app.example", "https://app.example"),
            ("https://evil.example", None),
        ):
            response = client.get(
                f"{API}/status/{unknown}", headers={"Origin": origin} | as_user("alice")
            )
            assert_error(response, 404)
            assert response.headers.get("access-control-allow-origin") == allowed_origin


@sqlite_only
def test_a_refused_preflight_is_a_json_error(settings_for: SettingsFor) -> None:
    settings = settings_for(jwt_secret=JWT_SECRET, cors_origins=["https://app.example"])
    with Runtime.build(settings) as rt, client_for(rt) as client:
        assert_error(_preflight(client, "https://evil.example"), 400)


@sqlite_only
def test_without_cors_origins_no_cors_headers(client: TestClient) -> None:
    response = _preflight(client, "https://app.example")
    assert "access-control-allow-origin" not in response.headers
    assert_error(response, 405)
