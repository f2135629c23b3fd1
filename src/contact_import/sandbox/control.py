"""The sandbox's own control routes, for tests and benchmarks in other processes:

POST /_sandbox/accounts                {"size", "seed", "faults", "token"?} -> 201 {"access_token"}
POST /_sandbox/accounts/{id}/changes   {"modified", "added", "deleted", "seed"} -> 200
GET  /_sandbox/healthz                 {"ok": true}
"""

from __future__ import annotations

import json
from typing import cast

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from contact_import.sandbox.accounts import Faults, is_count
from contact_import.sandbox.state import SandboxState, sandbox_state

__all__ = ["control_routes"]

_CHANGE_KINDS = frozenset({"modified", "added", "deleted", "seed"})


def control_routes() -> list[Route]:
    """Create accounts, change their books, and say the sandbox is up."""
    return [
        Route("/_sandbox/accounts", _create_account, methods=["POST"]),
        Route("/_sandbox/accounts/{account_id}/changes", _change_book, methods=["POST"]),
        Route("/_sandbox/healthz", _healthz, methods=["GET"]),
    ]


async def _create_account(request: Request) -> Response:
    try:
        spec = json.loads(await request.body())
        token = _add_account_from_json(sandbox_state(request), spec)
    except ValueError as exc:  # json.JSONDecodeError is a ValueError too
        return JSONResponse({"error": str(exc)}, status_code=400)
    return JSONResponse({"access_token": token}, status_code=201)


def _add_account_from_json(state: SandboxState, spec: object) -> str:
    if not isinstance(spec, dict):
        raise ValueError("expected a JSON object")
    size, seed, token = spec.get("size"), spec.get("seed", 1), spec.get("token")
    if not is_count(size):
        raise ValueError("size must be an integer >= 0")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ValueError("seed must be an integer")
    if token is not None and (not isinstance(token, str) or not token):
        raise ValueError("token must be a non-empty string")
    faults = Faults.from_json(spec.get("faults", {}))
    return state.add_account(cast(int, size), seed, token, faults)


async def _change_book(request: Request) -> Response:
    """{"modified", "added", "deleted", "seed"} -> 200 what changed; the id may be a token."""
    try:
        spec = json.loads(await request.body())
        if not isinstance(spec, dict) or not all(is_count(v) for v in spec.values()):
            raise ValueError("expected an object of integers >= 0")
        unknown = set(spec) - _CHANGE_KINDS
        if unknown:
            raise ValueError(f"unknown change {sorted(unknown)[0]!r}")
        changed = sandbox_state(request).change_book(request.path_params["account_id"], **spec)
    except KeyError:
        return JSONResponse({"error": "no such account"}, status_code=404)
    except ValueError as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    return JSONResponse(changed)


async def _healthz(request: Request) -> Response:
    return JSONResponse({"ok": True})
