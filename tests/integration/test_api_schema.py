"""A property-based run of the app's own OpenAPI schema (schemathesis): whatever a client sends
that the schema allows, the app answers without a 5xx, with a documented status code, content
type and body.

SQLite only: this checks the HTTP contract (routing, validation, error mapping, response
models), which does not depend on the SQL dialect; test_api.py runs the same routes on both
databases. One test per operation, so a failure names the route.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import jwt
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from contact_import.domain.job import JobStatus
from contact_import.runtime import Runtime
from contact_import.sandbox.server import RunningSandbox
from contact_import.web.app import create_app
from contact_import.web.routes.imports import status_page_url
from tests.helpers import SettingsFor, drain, queue_import

CRON_SECRET = "cron-secret-for-the-schema-run-0123456789"
JWT_SECRET = "jwt-secret-for-the-schema-run-0123456789abcdef"
USER = "schema-user"
EXAMPLES = 50  # per operation and generation mode: ~17 operations, well under a minute

OPERATIONS = [
    "GET /api/cron/process-imports",
    "POST /api/cron/process-imports",
    "POST /api/v1/contacts/import/{provider}/start",
    "GET /api/v1/contacts/import/{provider}/callback",
    "POST /api/v1/contacts/import/{provider}/callback",
    "GET /api/v1/contacts/import/status/{job_id}",
    "GET /api/v1/contacts/import/jobs",
    "POST /api/v1/contacts/import/jobs/{job_id}/cancel",
    "POST /api/v1/contacts/import/jobs/{job_id}/retry",
    "GET /api/v1/contacts/import/connections",
    "DELETE /api/v1/contacts/import/{provider}/connection",
    "POST /api/v1/contacts/import/{provider}/jobs",
    "GET /api/v1/contacts",
    "GET /healthz",
    "GET /metrics",
    "GET /imports/{job_id}/progress",
    "GET /imports/{job_id}",
]

CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
    schemathesis.checks.response_headers_conformance,
]

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def _marked(label: str, *marks: pytest.MarkDecorator) -> Any:
    return pytest.param(label, marks=list(marks), id=label)


POSITIVE = [_marked(label) for label in OPERATIONS]
# Operations with no parameter have no invalid request to make.
NEGATIVE = [_marked(label) for label in OPERATIONS if label not in {"GET /healthz", "GET /metrics"}]


def _jwt(sub: str) -> str:
    claims = {"sub": sub, "aud": "authenticated", "exp": int(time.time()) + 3600}
    return jwt.encode(claims, JWT_SECRET, algorithm="HS256")


@dataclass
class Api:
    schema: Any
    rt: Runtime
    job_ids: list[UUID]  # the user's real jobs, so ids sometimes hit one
    tokens: dict[UUID, str]  # their status-page tokens


def _load_schema(app: Any) -> Any:
    # Fetched from the app itself: a warning while building it (e.g. FastAPI's "Duplicate
    # Operation ID") is an error under this suite's filterwarnings.
    return schemathesis.openapi.from_asgi("/openapi.json", app)


@pytest.fixture
def api(settings_for: SettingsFor, sandbox: RunningSandbox) -> Iterator[Api]:
    settings = settings_for(cron_secret=CRON_SECRET, jwt_secret=JWT_SECRET)
    with Runtime.build(settings) as rt:
        done = queue_import(rt, sandbox, USER, size=30, seed=1)
        drain(rt)
        cancelled = queue_import(rt, sandbox, USER, size=30, seed=3)
        rt.jobs.cancel(cancelled.id)
        queued = queue_import(rt, sandbox, USER, size=30, seed=2, provider="microsoft")
        assert rt.jobs.get(done.id).status is JobStatus.COMPLETED
        ids = [done.id, cancelled.id, queued.id]
        tokens = {i: status_page_url(rt, i).partition("?token=")[2] for i in ids}
        yield Api(_load_schema(create_app(settings, runtime=rt)), rt, ids, tokens)


def _set_header(case: Any, name: str, value: str) -> None:
    headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != name.lower()}
    case.headers = headers | {name: value}


def _steer(api: Api, case: Any, choice: int) -> None:
    """Sometimes swap in real credentials and ids, so the 200 paths are exercised too."""
    path = case.operation.path
    if choice == 0:
        return  # exactly what schemathesis generated
    if path.startswith("/api/cron/"):
        _set_header(case, "x-cron-secret", CRON_SECRET)
        return
    if path.startswith("/api/v1/"):
        _set_header(case, "Authorization", f"Bearer {_jwt(USER)}")
    if case.path_parameters and "provider" in case.path_parameters and choice % 2:
        case.path_parameters["provider"] = ("google", "microsoft")[choice % 4 // 2]
    job_id = api.job_ids[choice % len(api.job_ids)]
    if case.path_parameters and "job_id" in case.path_parameters:
        case.path_parameters["job_id"] = str(job_id)
        if path.startswith("/imports/") and choice % 3 == 0:
            case.query = (case.query or {}) | {"token": api.tokens[job_id]}


def _run(api: Api, label: str, mode: GenerationMode, checks: list[Callable[..., Any]]) -> set[int]:
    """Run the operation's examples; the status codes it answered."""
    statuses: set[int] = set()
    operation = api.schema.find_operation_by_label(label)
    assert operation is not None, label

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode), choice=st.integers(0, 5))
    def exercise(case: Any, choice: int) -> None:
        _steer(api, case, choice)
        statuses.add(case.call_and_validate(checks=checks).status_code)

    exercise()
    return statuses


def test_the_operations_are_the_ones_listed(api: Api) -> None:
    labels = {result.ok().label for result in api.schema.get_all_operations()}
    assert labels == set(OPERATIONS)


@pytest.mark.parametrize("label", POSITIVE)
def test_valid_requests_get_documented_answers(api: Api, label: str) -> None:
    statuses = _run(api, label, GenerationMode.POSITIVE, CHECKS)
    # The steering reached the success path (no valid OAuth code can be generated for the
    # callbacks, whose success the connect-flow and browser-binding tests cover).
    if not label.endswith("/callback"):
        assert any(200 <= s < 300 for s in statuses), statuses


@pytest.mark.parametrize("label", NEGATIVE)
def test_invalid_requests_never_get_a_5xx(api: Api, label: str) -> None:
    _run(
        api,
        label,
        GenerationMode.NEGATIVE,
        [schemathesis.checks.not_a_server_error, schemathesis.checks.status_code_conformance],
    )


def test_operation_ids_are_unique(api: Api) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        spec = create_app(api.rt.settings, runtime=api.rt).openapi()
    ids = [op["operationId"] for ops in spec["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    assert not [str(w.message) for w in caught]
