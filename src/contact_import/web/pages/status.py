"""The live status page of one import, and (in development) a home page that starts one.

Access is by the signed, job-scoped link the OAuth callback redirects to (``signing.py``):
a wrong, expired or missing token and an unknown id all answer the same 404, so a guessed id
tells nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import parse_qs, quote, urlsplit
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from contact_import.errors import JobNotFound
from contact_import.providers.registry import PROVIDER_SPECS
from contact_import.settings import Settings
from contact_import.web.deps import Rt
from contact_import.web.flow_cookie import set_flow_cookie
from contact_import.web.pages.assets import STATIC_PREFIX, Asset, find_asset
from contact_import.web.pages.progress_view import StatusView, progress_out, status_view
from contact_import.web.pages.render import home_page, page_headers, status_page
from contact_import.web.problems import ApiProblem, NotFound
from contact_import.web.routes.imports import known_provider, link_secret
from contact_import.web.schemas import VALIDATION_ERROR, ErrorOut, JobOut, ProgressOut
from contact_import.web.signing import verify_job_link

__all__ = ["router"]

router = APIRouter(tags=["pages"], responses=VALIDATION_ERROR)

Token = Annotated[str, Query(max_length=200, description="the signed link's token")]

_NO_ACCESS = "no such import, or this link is not valid any more"
_DEV_USER = "dev-user"
_DEFAULT_CONTACTS = 2_000
_MAX_CONTACTS = 100_000
_MAX_FORM_BYTES = 1_024
_VERSIONED_CACHE = "public, max-age=31536000, immutable"
_UNVERSIONED_CACHE = "public, max-age=300"


def _authorized_view(rt: Rt, job_id: UUID, token: str) -> StatusView:
    """The job's page view, for the holder of its signed link; the same 404 for every other case."""
    if not token or not verify_job_link(link_secret(rt), job_id, token):
        raise NotFound(_NO_ACCESS)
    try:
        job = rt.jobs.get(job_id)
    except JobNotFound:  # a signed link to a job that is gone
        raise NotFound(_NO_ACCESS) from None
    email = rt.grants.email_of(job.user_id, job.provider)
    return status_view(JobOut.of(job), datetime.now(UTC), account_email=email)


@router.get(
    "/imports/{job_id}/progress",
    response_model=ProgressOut,
    responses={404: {"model": ErrorOut}},
)
def progress(job_id: UUID, rt: Rt, response: Response, token: Token = "") -> ProgressOut:
    """What the status page polls: the job and its pace, for the holder of its signed link."""
    view = _authorized_view(rt, job_id, token)
    response.headers.update({"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})
    return progress_out(view)


# response_class=Response: with HTMLResponse, FastAPI would document the JSON errors as HTML.
@router.get(
    "/imports/{job_id}",
    response_class=Response,
    responses={
        200: {
            "description": "the live status page",
            "content": {"text/html": {"schema": {"type": "string"}}},
        },
        404: {"model": ErrorOut, "description": "no such job, or not this link's job"},
    },
)
def status(job_id: UUID, rt: Rt, token: Token = "") -> HTMLResponse:
    """The job's live status page (HTML), where the OAuth callback sends the browser."""
    view = _authorized_view(rt, job_id, token)
    base = rt.settings.mount_path
    feed = f"{base}/imports/{job_id}/progress?token={quote(token, safe='')}"
    return HTMLResponse(status_page(view, feed, base=base), headers=page_headers())


@router.get(STATIC_PREFIX + "/{name}", include_in_schema=False)
def static(name: str, request: Request, v: str = "") -> Response:
    """The pages' CSS and JavaScript; cached for good under their versioned URL."""
    asset = find_asset(name)
    if asset is None:
        raise NotFound(f"no static file {name!r}")
    headers = _asset_headers(asset, versioned=v == asset.version)
    if request.headers.get("if-none-match") == asset.etag:
        return Response(status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)


def _asset_headers(asset: Asset, *, versioned: bool) -> dict[str, str]:
    return {
        "Cache-Control": _VERSIONED_CACHE if versioned else _UNVERSIONED_CACHE,
        "ETag": asset.etag,
        "X-Content-Type-Options": "nosniff",
    }


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def home(rt: Rt) -> HTMLResponse:
    """Development only: buttons that start a sandbox import; 404 otherwise."""
    _require_dev_mode(rt.settings)
    page = home_page(
        default_contacts=_DEFAULT_CONTACTS,
        max_contacts=_MAX_CONTACTS,
        base=rt.settings.mount_path,
    )
    return HTMLResponse(page, headers=page_headers(form_targets=_authorize_origins(rt.settings)))


async def _dev_form(request: Request, rt: Rt) -> dict[str, str]:
    """The posted form (urlencoded, small), first value of each field; development only."""
    _require_dev_mode(rt.settings)
    body = await request.body()
    if len(body) > _MAX_FORM_BYTES:
        raise ApiProblem("the form is too large")
    fields = parse_qs(body.decode("utf-8", errors="replace"), max_num_fields=8)
    return {name: values[0] for name, values in fields.items()}


@router.post("/dev/start/{provider}", include_in_schema=False)
def dev_start(
    provider: str, rt: Rt, form: Annotated[dict[str, str], Depends(_dev_form)]
) -> RedirectResponse:
    """Development only: start an import as the dev user, no sign-in needed.

    With the sandbox (``SANDBOX_URL`` set), the form's ``contacts`` picks the size of the new
    account's book; a real provider gets no login hint.
    """
    known_provider(provider)
    hint = _sandbox_hint(form.get("contacts")) if rt.settings.sandbox_url else None
    flow = rt.connections.start(_DEV_USER, provider, login_hint=hint)
    response = RedirectResponse(flow.auth_url, status_code=303)
    # The browser comes back to the callback with it, as after an app's start.
    set_flow_cookie(response, rt.settings, provider, flow)
    return response


def _require_dev_mode(settings: Settings) -> None:
    if not settings.dev_mode:
        raise NotFound("nothing here")


def _sandbox_hint(contacts: str | None) -> str | None:
    """The sandbox's ``login_hint`` for a new account with a book of ``contacts`` people."""
    if contacts is None or not contacts.strip():
        return None
    text = contacts.strip()
    # isascii: str.isdigit also accepts digits like "²" that int() refuses.
    if not (text.isascii() and text.isdigit()) or int(text) > _MAX_CONTACTS:
        raise ApiProblem(f"contacts must be a whole number from 0 to {_MAX_CONTACTS:,}")
    return f"contacts:{int(text)}"


def _authorize_origins(settings: Settings) -> list[str]:
    """Where the home page's forms lead: the providers' sign-in origins (CSP form-action)."""
    origins = []
    for spec in PROVIDER_SPECS:
        parts = urlsplit(spec.oauth_endpoints(settings).authorize_url)
        origin = f"{parts.scheme}://{parts.netloc}"
        if parts.scheme in ("http", "https") and parts.netloc and origin not in origins:
            origins.append(origin)
    return origins
