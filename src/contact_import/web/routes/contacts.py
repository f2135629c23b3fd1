"""The signed-in user's contacts, page by page."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from contact_import.store.contact_list import list_contacts
from contact_import.web.deps import CurrentUser, Rt
from contact_import.web.schemas import VALIDATION_ERROR, ContactOut, ContactsOut, ErrorOut

router = APIRouter(tags=["contacts"], responses=VALIDATION_ERROR)


@router.get(
    "/api/v1/contacts",
    response_model=ContactsOut,
    responses={400: {"model": ErrorOut}, 401: {"model": ErrorOut}},
)
def contacts(
    user: CurrentUser,
    rt: Rt,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> ContactsOut:
    rows, next_cursor = list_contacts(rt.engine, user, limit=limit, cursor=cursor)
    return ContactsOut(
        contacts=[
            ContactOut(
                id=r.id,
                display_name=r.display_name,
                emails=r.emails,
                phones=r.phones,
                created_at=r.created_at,
                updated_at=r.updated_at,
            )
            for r in rows
        ],
        next_cursor=next_cursor,
    )
