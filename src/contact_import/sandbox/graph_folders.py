"""Microsoft Graph's contact folders: ``GET /v1.0/me/contactFolders`` (the folders in the default
Contacts folder) and ``GET /v1.0/me/contactFolders/{id}/childFolders`` (the folders in another).

Each answers a collection of ``contactFolder`` objects, ``{"id", "displayName",
"parentFolderId"}``, paged as Graph pages Outlook resources: ``$top`` (default 10, at most
1000), an absolute ``@odata.nextLink`` repeating the query with ``$skip``; ``$select`` picks
properties (``id`` always comes along). An unknown or deleted folder answers 404
``ErrorItemNotFound``. Requests are numbered apart from contacts requests (``Account``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response

from contact_import.sandbox.folder_tree import ROOT_ID, Folder
from contact_import.sandbox.graph import (
    DEFAULT_TOP,
    MAX_TOP,
    BadQuery,
    graph_error,
    integer_option,
    skip_link,
)
from contact_import.sandbox.state import Admitted, WireJSONResponse

__all__ = ["CHILD_FOLDERS_PATH", "FOLDERS_PATH", "NO_SUCH_FOLDER", "list_folders"]

FOLDERS_PATH = "/v1.0/me/contactFolders"
CHILD_FOLDERS_PATH = FOLDERS_PATH + "/{folder}/childFolders"
NO_SUCH_FOLDER = "The specified object was not found in the store."
_PROPERTIES = ("id", "displayName", "parentFolderId")


@dataclass(frozen=True, slots=True)
class _Query:
    top: int
    skip: int
    select: tuple[str, ...]

    @classmethod
    def parse(cls, params: QueryParams) -> _Query:
        select = tuple(n.strip() for n in params.get("$select", "").split(",") if n.strip())
        for name in select:
            if name not in _PROPERTIES:
                message = f"Could not find a property named '{name}' on type "
                raise BadQuery(message + "'microsoft.graph.contactFolder'.", "BadRequest")
        return cls(
            integer_option(params, "$top", DEFAULT_TOP, low=1, high=MAX_TOP),
            integer_option(params, "$skip", 0, low=0, high=None),
            select,
        )


async def list_folders(request: Request, admitted: Admitted) -> Response:
    """``/me/contactFolders`` or ``…/{id}/childFolders``, for a request ``admit`` let through."""
    tree = admitted.account.folders
    named = request.path_params.get("folder")
    parent = ROOT_ID if named is None else tree.resolve(named)
    if parent is None:
        return graph_error(404, "ErrorItemNotFound", NO_SUCH_FOLDER)
    try:
        query = _Query.parse(request.query_params)
    except BadQuery as exc:
        return graph_error(400, exc.code, str(exc))
    folders = tree.children(parent)
    end = min(query.skip + query.top, len(folders))
    body: dict[str, Any] = {
        "@odata.context": _context(request, admitted.account.id, named),
        "value": [_wire(folder, query.select) for folder in folders[query.skip : end]],
    }
    if end < len(folders):
        body["@odata.nextLink"] = skip_link(request, end)
    return WireJSONResponse(body)


def _wire(folder: Folder, select: tuple[str, ...]) -> dict[str, Any]:
    wire = {"id": folder.id, "displayName": folder.name, "parentFolderId": folder.parent}
    return {k: v for k, v in wire.items() if not select or k == "id" or k in select}


def _context(request: Request, user_id: str, parent: str | None) -> str:
    base = f"{request.base_url}v1.0/$metadata#users('{user_id}')/contactFolders"
    return base if parent is None else f"{base}('{parent}')/childFolders"
