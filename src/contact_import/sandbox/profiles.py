"""Who a token belongs to, and revoking it, as the real providers answer:

    GET  /v1/people/me?personFields=emailAddresses   People API ``people.get`` of the user
    GET  /v1.0/me                                    Graph's signed-in user (``mail``, UPN)
    POST /revoke                                     Google's token revocation (token=...)

A revoked token (access or refresh) ends the account's whole grant, as Google's does: its
access tokens answer 401 and its refresh tokens ``invalid_grant`` from then on. An unknown or
already revoked token answers 400 ``invalid_token``.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from contact_import.sandbox import graph, people
from contact_import.sandbox.state import Admitted, api_route, sandbox_state

__all__ = ["GRAPH_ME_PATH", "PEOPLE_ME_PATH", "profile_routes"]

PEOPLE_ME_PATH = "/v1/people/me"
GRAPH_ME_PATH = "/v1.0/me"
_MASK_REQUIRED = (
    "personFields mask is required. Please specify one or more valid paths. Valid paths are "
    "documented at https://developers.google.com/people/api/rest/v1/people/get."
)


def profile_routes() -> list[Route]:
    return [
        api_route(PEOPLE_ME_PATH, people.GoogleErrors(), _people_me),
        api_route(GRAPH_ME_PATH, graph.GraphErrors(), _graph_me),
        Route("/revoke", _revoke, methods=["POST"]),
    ]


async def _people_me(request: Request, admitted: Admitted) -> Response:
    fields = {f.strip() for f in request.query_params.get("personFields", "").split(",")}
    if not fields - {""}:
        return people.google_error(400, "INVALID_ARGUMENT", _MASK_REQUIRED)
    account = admitted.account
    number = 100_000_000_000 + int(account.id.rsplit("-", 1)[-1])
    body: dict[str, object] = {"resourceName": f"people/{number}", "etag": f"%EgUBAi43PRo{number}"}
    if "emailAddresses" in fields:
        source = {"type": "ACCOUNT", "id": str(number)}
        metadata = {"primary": True, "verified": True, "source": source, "sourcePrimary": True}
        body["emailAddresses"] = [{"metadata": metadata, "value": account.email}]
    return JSONResponse(body)


async def _graph_me(request: Request, admitted: Admitted) -> Response:
    account = admitted.account
    return JSONResponse(
        {
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users/$entity",
            "id": f"{account.id}-0000-0000-0000-000000000000",
            "displayName": account.id,
            "mail": account.email,
            "userPrincipalName": account.email,
        }
    )


async def _revoke(request: Request) -> Response:
    """Google's revoke: ``token`` in the form (or the query); 200 ``{}`` once it is revoked."""
    form = parse_qs((await request.body()).decode(errors="replace"))
    token = (form.get("token") or [request.query_params.get("token", "")])[0]
    state = sandbox_state(request)
    account = state.account(token) or state.oauth.refresh_token_account(token)
    if account is None or account.faults.revoked:
        body = {"error": "invalid_token", "error_description": "Token expired or revoked"}
        return JSONResponse(body, status_code=400)
    account.revocations += 1
    state.revoke(account)
    return JSONResponse({})
