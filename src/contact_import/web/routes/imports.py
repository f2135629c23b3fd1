"""Start an import (OAuth), its callback, and the signed-in user's jobs."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Path, Query
from fastapi.responses import RedirectResponse

from contact_import.providers.factory import PROVIDERS
from contact_import.web.deps import CurrentUser, Rt
from contact_import.web.problems import ApiProblem, NotFound
from contact_import.web.schemas import VALIDATION_ERROR, AuthUrlOut, ErrorOut, JobOut, JobsOut
from contact_import.web.signing import sign_job_link

router = APIRouter(prefix="/api/v1/contacts/import", tags=["imports"], responses=VALIDATION_ERROR)

Provider = Annotated[str, Path(description="google or microsoft", pattern="^[a-z]+$")]
_USER_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorOut},
    404: {"model": ErrorOut},
}


def _known(provider: str) -> str:
    if provider not in PROVIDERS:
        raise NotFound(f"unknown provider {provider!r}; one of {', '.join(PROVIDERS)}")
    return provider


@router.post("/{provider}/start", response_model=AuthUrlOut, responses=_USER_ERRORS)
def start(provider: Provider, user: CurrentUser, rt: Rt) -> AuthUrlOut:
    """The provider's consent page for this user (state + PKCE S256); open it in the browser."""
    return AuthUrlOut(auth_url=rt.connections.start(user, _known(provider)))


@router.get(
    "/{provider}/callback",
    status_code=303,
    response_class=RedirectResponse,
    responses={
        303: {"description": "to the job's status page"},
        400: {"model": ErrorOut},
        404: {"model": ErrorOut},
    },
)
def callback(
    provider: Provider,
    rt: Rt,
    code: Annotated[str | None, Query()] = None,
    state: Annotated[str | None, Query()] = None,
    error: Annotated[str | None, Query(description="set by the provider on refusal")] = None,
) -> RedirectResponse:
    """Where the provider sends the browser back: exchange the code, queue the job, show it."""
    _known(provider)
    if error:
        raise ApiProblem(f"the {provider} sign-in did not complete ({error[:64]})")
    if not code or not state:
        raise ApiProblem("code and state are required")
    job = rt.connections.complete(provider, code=code, state=state)
    return RedirectResponse(status_page_url(rt, job.id), status_code=303)


def status_page_url(rt: Rt, job_id: UUID) -> str:
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
