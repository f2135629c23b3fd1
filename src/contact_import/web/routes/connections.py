"""The user's connected accounts: list, disconnect, and import with the app's own tokens."""

from __future__ import annotations

from fastapi import APIRouter, Response

from contact_import.connected import NothingConnected, OwnTokens
from contact_import.web.deps import CurrentUser, Rt
from contact_import.web.problems import NotFound
from contact_import.web.routes.imports import Provider, known_provider, status_page_url
from contact_import.web.schemas import (
    VALIDATION_ERROR,
    ConnectedOut,
    ConnectionOut,
    ConnectionsOut,
    DisconnectedOut,
    ErrorOut,
    JobOut,
    OwnTokensIn,
)

router = APIRouter(
    prefix="/api/v1/contacts/import", tags=["connections"], responses=VALIDATION_ERROR
)
_USER_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorOut},
    404: {"model": ErrorOut},
}


@router.get("/connections", response_model=ConnectionsOut, responses=_USER_ERRORS)
def connections(user: CurrentUser, rt: Rt) -> ConnectionsOut:
    """The user's accounts, one per provider: status, email, since when, last and next sync."""
    return ConnectionsOut(
        connections=[
            ConnectionOut(
                provider=view.account.provider,
                status=view.account.status,
                account_email=view.account.account_email,
                connected_at=view.account.connected_at,
                last_synced_at=view.account.last_synced_at,
                next_sync_at=view.next_sync_at,
            )
            for view in rt.accounts.list(user)
        ]
    )


@router.delete("/{provider}/connection", response_model=DisconnectedOut, responses=_USER_ERRORS)
def disconnect(provider: Provider, user: CurrentUser, rt: Rt) -> DisconnectedOut:
    """Revoke at the provider, delete every token held, cancel the active import; the
    imported contacts stay. Importing again needs a new consent (or new tokens)."""
    try:
        done = rt.accounts.disconnect(user, known_provider(provider))
    except NothingConnected as exc:
        raise NotFound(str(exc)) from None
    return DisconnectedOut(
        provider=done.provider,
        revoked_at_provider=done.revoked_at_provider,
        cancelled_job_id=done.cancelled_job_id,
    )


@router.post(
    "/{provider}/jobs",
    response_model=ConnectedOut,
    status_code=201,
    responses={
        **_USER_ERRORS,
        200: {"model": ConnectedOut, "description": "the active job (the tokens are stored)"},
        400: {"model": ErrorOut, "description": "a body that is not JSON"},
    },
)
def bring_tokens(
    provider: Provider, body: OwnTokensIn, user: CurrentUser, rt: Rt, response: Response
) -> ConnectedOut:
    """Import with provider tokens the app already holds: 201 with the new job, or 200 with
    the active one (the tokens are stored either way)."""
    tokens = OwnTokens(body.access_token, body.refresh_token, body.expires_in)
    job, created = rt.accounts.bring_tokens(user, known_provider(provider), tokens)
    if not created:
        response.status_code = 200
    status_url = rt.settings.public_base_url.rstrip("/") + status_page_url(rt, job.id)
    return ConnectedOut(job=JobOut.of(job), status_url=status_url)
