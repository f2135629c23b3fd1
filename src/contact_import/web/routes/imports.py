"""Start an import (OAuth), its callback, and the signed-in user's jobs."""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from uuid import UUID

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import RedirectResponse

from contact_import.errors import UnknownProvider
from contact_import.providers.registry import PROVIDER_NAMES, provider_spec
from contact_import.runner.instant import import_now
from contact_import.store.jobs import Job
from contact_import.web.deps import CurrentUser, Rt
from contact_import.web.flow_cookie import clear_flow_cookie, read_flow_cookie, set_flow_cookie
from contact_import.web.problems import ApiProblem, NotFound
from contact_import.web.schemas import (
    VALIDATION_ERROR,
    AuthUrlOut,
    CallbackIn,
    ConnectedOut,
    ErrorOut,
    JobOut,
    JobsOut,
)
from contact_import.web.signing import sign_job_link

router = APIRouter(prefix="/api/v1/contacts/import", tags=["imports"], responses=VALIDATION_ERROR)

Provider = Annotated[str, Path(description=" or ".join(PROVIDER_NAMES), pattern="^[a-z]+$")]
_USER_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorOut},
    404: {"model": ErrorOut},
}


_ERROR_CODE = re.compile(r"[a-z_]{1,64}")


def known_provider(provider: str) -> str:
    """``provider`` when it is one of ours; else a 404 (it names no resource)."""
    try:
        return provider_spec(provider).name
    except UnknownProvider as exc:
        raise NotFound(str(exc)) from None


@router.post("/{provider}/start", response_model=AuthUrlOut, responses=_USER_ERRORS)
def start(provider: Provider, user: CurrentUser, rt: Rt, response: Response) -> AuthUrlOut:
    """The provider's consent page for this user (state + PKCE S256); open it in the browser.

    Also sets the flow's HttpOnly nonce cookie: the GET callback completes only in the
    browser that holds it.
    """
    flow = rt.connections.start(user, known_provider(provider))
    set_flow_cookie(response, rt.settings, provider, flow)
    return AuthUrlOut(auth_url=flow.auth_url)


@router.get(
    "/{provider}/callback",
    status_code=303,
    response_class=RedirectResponse,
    responses={
        303: {"description": "to the job's status page, or with OAUTH_RETURN_URL to the app"},
        400: {"model": ErrorOut},
        404: {"model": ErrorOut},
    },
)
def callback(
    provider: Provider,
    request: Request,
    rt: Rt,
    *,
    code: Annotated[str | None, Query()] = None,
    state: Annotated[str | None, Query()] = None,
    error: Annotated[str | None, Query(description="set by the provider on refusal")] = None,
) -> RedirectResponse:
    """Where the provider sends the browser back: exchange the code, queue the job, import it
    for up to CALLBACK_BUDGET_SECONDS (a small book is completed by then), show it.

    Only the browser that started the flow (its nonce cookie) completes it here. With
    OAUTH_RETURN_URL set, the browser is forwarded to the app instead, which completes with
    POST …/callback and the user's JWT.
    """
    known_provider(provider)
    if rt.settings.oauth_return_url:
        forwarded = {"provider": provider, "code": code, "state": state, "error": error}
        return RedirectResponse(_forward_url(rt.settings.oauth_return_url, forwarded), 303)
    if error:
        # Only a well-formed OAuth error code is repeated back ("access_denied").
        reason = f" ({error})" if _ERROR_CODE.fullmatch(error) else ""
        raise ApiProblem(f"the {provider} sign-in did not complete{reason}")
    if not code or not state:
        raise ApiProblem("code and state are required")
    nonce = read_flow_cookie(request, state)
    job = rt.connections.complete_in_browser(provider, code=code, state=state, browser_nonce=nonce)
    _import_now(rt, job)
    status_page = rt.settings.mount_path + status_page_url(rt, job.id)
    response = RedirectResponse(status_page, status_code=303)
    clear_flow_cookie(response, rt.settings, provider, state)
    return response


@router.post(
    "/{provider}/callback",
    response_model=ConnectedOut,
    responses={**_USER_ERRORS, 400: {"model": ErrorOut}},
)
def complete(provider: Provider, body: CallbackIn, user: CurrentUser, rt: Rt) -> ConnectedOut:
    """For an app on another site: complete the flow its page received, as the signed-in user.

    Completes only when the bearer JWT's user is the one who started the flow. Like the GET
    callback, it imports for up to CALLBACK_BUDGET_SECONDS first: ``job`` says how far it got.
    """
    job = rt.connections.complete_as_user(
        known_provider(provider), code=body.code, state=body.state, user_id=user
    )
    job = _import_now(rt, job)
    status_url = rt.settings.public_base_url.rstrip("/") + status_page_url(rt, job.id)
    return ConnectedOut(job=JobOut.of(job), status_url=status_url)


def _import_now(rt: Rt, job: Job) -> Job:
    """Import the new job for up to CALLBACK_BUDGET_SECONDS before answering (0: queue it only);
    never fails the callback (see ``runner.instant``)."""
    return import_now(
        rt.jobs,
        rt.importer,
        job,
        metrics=rt.metrics,
        budget_seconds=rt.settings.callback_budget_seconds,
    )


def _forward_url(return_url: str, params: dict[str, str | None]) -> str:
    """``return_url`` with ``params`` (those given) added to its own query."""
    parts = urlsplit(return_url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    query += [(name, value) for name, value in params.items() if value is not None]
    return urlunsplit(parts._replace(query=urlencode(query)))


def status_page_url(rt: Rt, job_id: UUID) -> str:
    """The job's status page with its signed link, below where the routes are mounted."""
    return f"/imports/{job_id}?token={sign_job_link(link_secret(rt), job_id)}"


def link_secret(rt: Rt) -> str:
    """Signs status-page links: JWT_SECRET, or in development the token key as a fallback."""
    return rt.settings.jwt_secret or rt.settings.token_keys()[0]


@router.get("/status/{job_id}", response_model=JobOut, responses=_USER_ERRORS)
def status(job_id: UUID, user: CurrentUser, rt: Rt) -> JobOut:
    """One of the user's jobs with its counts; anyone else's id answers 404."""
    return JobOut.of(rt.jobs.get(job_id, user_id=user))


@router.get("/jobs", response_model=JobsOut, responses=_USER_ERRORS)
def jobs(user: CurrentUser, rt: Rt, limit: Annotated[int, Query(ge=1, le=200)] = 50) -> JobsOut:
    """The user's jobs, newest first."""
    return JobsOut(jobs=[JobOut.of(j) for j in rt.jobs.list_jobs(user_id=user, limit=limit)])


@router.post(
    "/jobs/{job_id}/cancel",
    response_model=JobOut,
    responses={**_USER_ERRORS, 409: {"model": ErrorOut}},
)
def cancel(job_id: UUID, user: CurrentUser, rt: Rt) -> JobOut:
    """Cancel: at once if no worker holds it, else at the running import's next page."""
    return JobOut.of(rt.jobs.cancel(job_id, user_id=user))


@router.post(
    "/jobs/{job_id}/retry",
    response_model=JobOut,
    responses={**_USER_ERRORS, 409: {"model": ErrorOut}},
)
def retry(job_id: UUID, user: CurrentUser, rt: Rt) -> JobOut:
    """Queue a failed or cancelled job again; it resumes from where it stopped."""
    return JobOut.of(rt.jobs.retry(job_id, user_id=user))
