"""The sandbox provider as an ASGI app: Google's People API and Microsoft Graph's contacts over
real HTTP, with fault knobs.

Routes:

    GET  /v1/people/me/connections   people.connections.list, with sync tokens (``people.py``)
    GET  /v1.0/me/contacts           the same books as Graph answers them (see ``graph.py``)
    GET  /v1.0/me/contactFolders/{id}/contacts/delta   a folder's delta (``graph_delta.py``)
    GET  /v1.0/me/contactFolders, /v1.0/me/contactFolders/{id}/childFolders
                                     the account's contact folders (``graph_folders.py``)
    GET|POST Google's and Microsoft's OAuth authorize and token endpoints (see ``oauth.py``)
    GET  /v1/people/me, /v1.0/me, POST /revoke   whose token it is, revoking it (``profiles.py``)
    POST /_sandbox/accounts, /_sandbox/accounts/{id}/changes, GET /_sandbox/healthz
                                     the sandbox's own controls (see ``control.py``)

This module only assembles the app; what the routes share is in ``state.py``.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from contact_import.sandbox import graph, graph_delta, graph_folders, people
from contact_import.sandbox.control import control_routes
from contact_import.sandbox.oauth import oauth_routes
from contact_import.sandbox.profiles import profile_routes
from contact_import.sandbox.state import SandboxState, api_route

__all__ = ["create_sandbox_app"]


def create_sandbox_app(state: SandboxState) -> Starlette:
    """The sandbox's ASGI app, serving the accounts of ``state``."""
    app = Starlette(
        routes=[
            api_route(people.CONNECTIONS_PATH, people.GoogleErrors(), people.list_connections),
            api_route(graph.CONTACTS_PATH, graph.GraphErrors(), graph.list_contacts),
            api_route(graph_delta.DELTA_PATH, graph.GraphErrors(), graph_delta.contacts_delta),
            *_folder_routes(),
            *control_routes(),
            *oauth_routes(),
            *profile_routes(),
        ],
        exception_handlers={HTTPException: _http_error},
    )
    app.state.sandbox = state
    return app


def _folder_routes() -> list[Route]:
    paths = (graph_folders.FOLDERS_PATH, graph_folders.CHILD_FOLDERS_PATH)
    errors = graph.GraphErrors()
    return [api_route(path, errors, graph_folders.list_folders, "folders") for path in paths]


async def _http_error(request: Request, exc: Exception) -> Response:
    code = exc.status_code if isinstance(exc, HTTPException) else 500
    detail = exc.detail if isinstance(exc, HTTPException) else "Internal error."
    return JSONResponse({"error": {"code": code, "message": detail}}, status_code=code)
