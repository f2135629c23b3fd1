"""The live status page of one import, and (in development) a home page that starts one."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, RedirectResponse

from contact_import.web.deps import Rt
from contact_import.web.problems import NotFound
from contact_import.web.routes.imports import link_secret
from contact_import.web.schemas import ErrorOut, JobOut
from contact_import.web.signing import verify_job_link

router = APIRouter(tags=["pages"])

Token = Annotated[str, Query(max_length=200, description="the signed link's token")]


def _authorized_job(rt: Rt, job_id: UUID, token: str) -> JobOut:
    if not verify_job_link(link_secret(rt), job_id, token):
        raise NotFound(f"no import job {job_id}")
    return JobOut.of(rt.jobs.get(job_id))


@router.get(
    "/imports/{job_id}/progress", response_model=JobOut, responses={404: {"model": ErrorOut}}
)
def progress(job_id: UUID, token: Token, rt: Rt) -> JobOut:
    """What the status page polls: the job, for the holder of its signed link."""
    return _authorized_job(rt, job_id, token)


@router.get("/imports/{job_id}", response_class=HTMLResponse, responses={404: {"model": ErrorOut}})
def status_page(job_id: UUID, token: Token, rt: Rt) -> HTMLResponse:
    job = _authorized_job(rt, job_id, token)
    return HTMLResponse(
        f"<!doctype html><title>Import {job.id}</title><p id=status>{job.status}</p>",
        headers={"Referrer-Policy": "no-referrer", "Cache-Control": "no-store"},
    )


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def home(rt: Rt) -> HTMLResponse:
    if not rt.settings.dev_mode:
        raise NotFound("nothing here")
    return HTMLResponse("<!doctype html><title>contact-import</title>")


@router.post("/dev/start/{provider}", include_in_schema=False)
def dev_start(provider: str, rt: Rt) -> RedirectResponse:
    """Development only: start a sandbox import as the dev user, no sign-in needed."""
    if not rt.settings.dev_mode:
        raise NotFound("nothing here")
    return RedirectResponse(rt.connections.start("dev-user", provider), status_code=303)
